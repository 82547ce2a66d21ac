"""Corpus weights (models/recipes/corpus_balance.py) and the TF-IDF view's sample weights."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from corpus_balance import CorpusBalancedCoder, SquareRootBalancedCoder, corpus_weights  # noqa: E402

from pipeline.modeling.context import TextView  # noqa: E402


def test_corpus_weights_give_each_corpus_the_same_total_or_a_square_root_share():
    corpora = np.array(["a"] + ["b"] * 3)
    w = corpus_weights(corpora, 1.0)
    assert w.mean() == pytest.approx(1.0) and w[0] == pytest.approx(w[1:].sum())
    half = corpus_weights(corpora, 0.5)
    assert half.mean() == pytest.approx(1.0) and half[0] / half[1] == pytest.approx(3 ** 0.5)


def test_text_view_sample_weights():
    texts = ["you never listen", "ok sure", "this is pointless", "tell me more", "fine whatever", "yes"] * 3
    y = np.array([1, 0, 1, 0, 1, 0] * 3)
    plain = TextView().fit(texts, y).predict_proba(texts, (0, 1))
    assert np.array_equal(TextView().fit(texts, y, np.ones(len(y))).predict_proba(texts, (0, 1)), plain)
    heavy = TextView().fit(texts, y, np.where(y == 1, 5.0, 1.0)).predict_proba(texts, (0, 1))
    assert heavy[:, 1].mean() > plain[:, 1].mean()  # the positives weigh more: the scores rise


@pytest.mark.parametrize("cls", [CorpusBalancedCoder, SquareRootBalancedCoder])
def test_corpus_balanced_coders_fit_with_their_weights(cls, train_sessions, test_sessions):
    sessions = [replace(s, meta={**s.meta, "corpus": "small" if i % 4 == 0 else "large"})
                for i, s in enumerate(train_sessions)]
    model = cls(embedder="hashing.v1", cv=3, text_view=True, corpus_threshold=True).fit(sessions)
    assert model.w_client_.mean() == pytest.approx(1.0) and len(np.unique(model.w_client_)) == 2
    (scores,) = model.predict_proba(test_sessions[:1])
    client = [t.index for t in test_sessions[0].turns if t.speaker_role == "client"]
    assert np.allclose(scores.rupture[client].sum(axis=1), 1.0)


def test_fit_calibrated_weights_change_the_head_and_unit_weights_do_not(train_sessions):
    from sklearn.model_selection import GroupKFold

    from pipeline.modeling.heads import fit_calibrated, make_head

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] + rng.normal(scale=0.8, size=120) > 0.6).astype(int)
    folds = list(GroupKFold(3).split(X, y, groups=np.arange(120) % 6))
    plain, oof = fit_calibrated(make_head("logreg", 0.5, 0), X, y, folds, (0, 1))
    ones, oof1 = fit_calibrated(make_head("logreg", 0.5, 0), X, y, folds, (0, 1), sample_weight=np.ones(120))
    assert np.allclose(oof, oof1) and np.allclose(plain.predict_proba(X), ones.predict_proba(X))
    w = np.where(X[:, 1] > 0, 5.0, 0.2)  # another weighting: another head
    heavy, _ = fit_calibrated(make_head("logreg", 0.5, 0), X, y, folds, (0, 1), sample_weight=w)
    assert not np.allclose(plain.predict_proba(X), heavy.predict_proba(X))
