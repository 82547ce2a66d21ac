"""The label-free decision rules of models/recipes/threshold_transfer.py (fast: synthetic scores)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from threshold_transfer import em_prior, per_session, rules_table  # noqa: E402


def calibrated_scores(rng, n, rate, prior):
    """Scores calibrated for class prior ``prior`` on data whose real positive rate is ``rate``."""
    y = (rng.random(n) < rate).astype(int)
    x = rng.normal(np.where(y == 1, 1.5, -1.5), 1.0)
    llr = 3.0 * x  # the log-likelihood ratio of N(1.5, 1) against N(-1.5, 1) at x
    odds = np.exp(llr) * prior / (1 - prior)
    return y, odds / (1 + odds)


def test_em_prior_recovers_a_shifted_rate_and_its_beta_prior_holds_it_back():
    rng = np.random.default_rng(0)
    y, p = calibrated_scores(rng, 4000, rate=0.30, prior=0.05)
    assert p.mean() < 0.25  # the scores alone under-count
    assert em_prior(p, 0.05, k=0).mean() == pytest.approx(0.30, abs=0.04)
    held = em_prior(p, 0.05, k=1e6).mean()
    assert held == pytest.approx(p.mean(), abs=0.01)  # a prior worth a million turns: no adjustment
    assert p.mean() < em_prior(p, 0.05, k=400).mean() < em_prior(p, 0.05, k=0).mean()


def test_per_session_rules_change_no_other_session():
    rng = np.random.default_rng(1)
    _, a = calibrated_scores(rng, 50, 0.3, 0.05)
    _, b = calibrated_scores(rng, 50, 0.02, 0.05)
    sessions = np.array(["a"] * 50 + ["b"] * 50)
    both = per_session(np.concatenate([a, b]), sessions, lambda x: em_prior(x, 0.05, 0))
    assert np.allclose(both[:50], em_prior(a, 0.05, 0)) and np.allclose(both[50:], em_prior(b, 0.05, 0))


def test_rules_table_reports_every_rule_and_the_oracle():
    rng = np.random.default_rng(2)
    y, p = calibrated_scores(rng, 600, 0.1, 0.1)
    sessions = np.repeat(np.arange(12).astype(str), 50)
    corpus = np.where(np.arange(600) < 300, "x", "z")
    table = rules_table(y, p, sessions, (y, p, corpus, sessions))
    assert {"pooled", "corpus median", "session prior k=0", "oracle"} <= set(table)
    assert table["gold_rate"] == pytest.approx(y.mean(), abs=1e-3)
    assert table["oracle"]["f1"] >= table["pooled"]["f1"]


def test_split_sessions_holds_each_corpus_out_and_the_reference_sessions_apart():
    from types import SimpleNamespace

    import train_default as recipe

    pool = [SimpleNamespace(meta={"corpus": c}, n=i, turns=()) for i, c in
            enumerate(["hlqc_low", "hlqc_high", "annomi", "hope", "rogers", "hlqc_low", "annomi"])]
    ref = [SimpleNamespace(meta={"corpus": "hlqc_low"}, n=99, turns=())]
    splits = recipe.split_sessions(pool, ref)
    assert list(splits) == [*recipe.LOCO, recipe.REFERENCE_SPLIT]
    for name, (train_corpora, test_corpora) in recipe.LOCO.items():
        train, tests = splits[name]
        assert [s.n for s in train] == [s.n for c in train_corpora for s in pool if s.meta["corpus"] == c]
        assert list(tests) == test_corpora
        assert all(s.meta["corpus"] == c for c, sessions in tests.items() for s in sessions)
        assert not {s.n for s in train} & {s.n for sessions in tests.values() for s in sessions}
    assert splits[recipe.REFERENCE_SPLIT] == (pool, {"reference": ref})
