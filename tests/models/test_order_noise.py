"""The helpers of models/recipes/order_noise.py (fast: no model is fitted)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from order_noise import corpus_thresholds, reorder, spread  # noqa: E402


def test_reorder_keeps_the_sessions_and_is_repeatable():
    train = list(range(40))
    assert reorder(train, None) == train
    assert sorted(reorder(train, 1)) == train and reorder(train, 1) == reorder(train, 1)
    assert reorder(train, 1) != train and reorder(train, 1) != reorder(train, 2)


def test_corpus_thresholds_skip_corpora_with_few_positives():
    rng = np.random.default_rng(0)
    y = np.array([1] * 10 + [0] * 90 + [1] * 3 + [0] * 50)
    p = np.where(y == 1, rng.uniform(0.5, 1, len(y)), rng.uniform(0, 0.6, len(y)))
    corpus = np.array(["a"] * 100 + ["b"] * 53)
    out = corpus_thresholds(y, p, corpus)
    assert set(out) == {"a"}  # b has 3 rupture turns, under the 5 transfer_threshold asks for
    assert 0.4 < out["a"] <= 1


def test_spread_summarises_the_runs_and_skips_missing_values():
    runs = [{"f1": 0.15}, {"f1": 0.30}, {"f1": None}, {"f1": 0.34}]
    assert spread(runs, "f1") == {"min": 0.15, "median": 0.3, "max": 0.34}
    assert spread([{"f1": None}], "f1") is None
