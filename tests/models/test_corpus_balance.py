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
