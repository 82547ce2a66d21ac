"""pipeline.modeling.prototypes: the zero-shot baseline built from the coding manual's examples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from pipeline.codebook import load_codebook
from pipeline.modeling.prototypes import PrototypeCoder, guide_examples

BOOK = load_codebook()
ALL_CODES = ["none", *BOOK.rupture_types, *BOOK.markers, "repair", *BOOK.strategies]


@pytest.fixture(scope="module")
def examples() -> dict[str, list[str]]:
    return guide_examples()


@pytest.fixture(scope="module")
def prototypes() -> PrototypeCoder:
    return PrototypeCoder(embedder="hashing.v1").fit()


@pytest.mark.parametrize("code", ALL_CODES)
def test_prototypes_guide_has_three_examples_per_code(examples, code):
    assert len(examples.get(code, [])) >= 3, code


def test_prototypes_guide_examples_are_clean_turns(examples):
    assert set(examples) <= set(ALL_CODES)
    for code, texts in examples.items():
        for text in texts:
            assert text and "→" not in text and "**" not in text and not text.endswith("\\"), (code, text)
            assert "[" not in text, (code, text)  # non-verbal notes are taken out


def test_prototypes_fit_ignores_labels_and_sets_learned_attributes(prototypes):
    assert prototypes.rupture_protos_.shape == (3, 64)
    assert prototypes.marker_protos_.shape == (len(BOOK.markers), 64)
    assert prototypes.strategy_protos_.shape == (len(BOOK.strategies), 64)
    np.testing.assert_allclose(np.linalg.norm(prototypes.marker_protos_, axis=1), 1.0, rtol=1e-5)
    assert prototypes.n_train_sessions_ == 0


def test_prototypes_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        PrototypeCoder(embedder="hashing.v1").predict_proba([])


def test_prototypes_predict_with_the_hashing_embedder(prototypes, build):
    session = build("p", [("T", "What would you like to focus on today?"), ("I", "¿En qué quiere enfocarse?"),
                          ("C", "I don't know. Whatever you think."),
                          ("T", "I may have pushed too hard just now. What was that like for you?"),
                          ("C", "This is pointless, you never listen to me.")])
    (scores,) = prototypes.predict_proba([session])
    assert scores.rupture.shape == (5, 3)
    np.testing.assert_allclose(scores.rupture[[2, 4]].sum(axis=1), 1.0)
    np.testing.assert_allclose(scores.markers[[2, 4]].sum(axis=1), 1.0)
    assert np.isnan(scores.rupture[[0, 1, 3]]).all() and np.isnan(scores.repair[[1, 2, 4]]).all()
    assert ((scores.repair[[0, 3]] > 0) & (scores.repair[[0, 3]] < 1)).all()
    for d in prototypes.decide(session, scores):
        assert d.uncertainty is None or 0 <= d.uncertainty <= 1
        if d.rupture not in (None, "none"):
            assert any(m.startswith(d.rupture + ".") for m, _ in d.markers)
        if d.repair == "repair":
            assert d.strategies


def test_prototypes_session_without_clients(prototypes, build):
    (scores,) = prototypes.predict_proba([build("t", [("T", "Hello."), ("I", "Hola.")])])
    assert np.isnan(scores.rupture).all() and np.isfinite(scores.repair[0])
