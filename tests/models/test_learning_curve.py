"""The helpers of models/recipes/learning_curve.py: stratified draws, repeated recordings
kept on one side of a split, the slope per doubling (fast: no model is fitted)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from learning_curve import in_kind_splits, slope_per_doubling, subsample, summarise  # noqa: E402

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def _text(seed: int, n: int = 40) -> str:
    """A turn's words, different for each seed (no 8-word run shared between seeds)."""
    return " ".join(f"{WORDS[(seed * 7 + i) % len(WORDS)]}{seed}x{i}" for i in range(n))


@pytest.fixture
def corpus_session(make_session):
    def build(corpus: str, sid: str, seed: int):
        s = make_session([("T", _text(seed)), ("C", _text(seed + 1000))], session_id=sid)
        return replace(s, meta={"corpus": corpus})
    return build


def test_subsample_draws_within_each_corpus_keeps_the_order_and_is_repeatable(corpus_session):
    train = [corpus_session("a", f"a{i}", i) for i in range(16)] + [corpus_session("b", f"b{i}", 100 + i) for i in range(3)]
    part = subsample(train, 0.25, seed=1)
    assert sum(s.meta["corpus"] == "a" for s in part) == 4
    assert sum(s.meta["corpus"] == "b" for s in part) == 1  # at least one of each corpus
    assert [s for s in train if s in part] == part  # the pool's order
    assert [s.session_id for s in subsample(train, 0.25, seed=1)] == [s.session_id for s in part]
    assert [s.session_id for s in subsample(train, 0.25, seed=2)] != [s.session_id for s in part]
    assert subsample(train, 1.0, seed=0) == train


def test_in_kind_splits_keep_near_duplicates_in_one_half_and_out_of_the_other_corpora(corpus_session):
    low = [corpus_session("hlqc_low", f"low_{i}", i) for i in range(12)]
    low.append(corpus_session("hlqc_low", "low_dup", 5))  # repeats low_5
    high = [corpus_session("hlqc_high", f"high_{i}", 50 + i) for i in range(4)]
    high.append(corpus_session("hlqc_high", "high_dup", 5))  # repeats low_5 too
    splits = in_kind_splits(low + high)
    assert len(splits) == 2
    tested = []
    for other, more, test, left_out in splits.values():
        ids = {s.session_id for s in test}
        tested += ids
        assert not ids & {s.session_id for s in more}
        assert all(s.meta["corpus"] == "hlqc_high" for s in other)
        assert ({"low_5", "low_dup"} <= ids) or not ({"low_5", "low_dup"} & ids)  # one half holds both
        if "low_5" in ids:
            assert "high_dup" not in {s.session_id for s in other} and left_out == 1
        else:
            assert "high_dup" in {s.session_id for s in other} and left_out == 0
    assert sorted(tested) == sorted(s.session_id for s in low)  # every HLQC low session tested once


def test_slope_per_doubling_and_summary():
    assert slope_per_doubling([(10, 0.1), (20, 0.2), (40, 0.3)]) == pytest.approx(0.1)
    assert slope_per_doubling([(10, 0.1), (10, 0.3)]) is None
    assert slope_per_doubling([(0, 0.9), (10, 0.1), (20, 0.2)]) == pytest.approx(0.1)  # no session: no log
    runs = [{"fraction": 0.5, "train_sessions": 10, "figures": {"rupture_pr_auc": 0.2}},
            {"fraction": 0.5, "train_sessions": 10, "figures": {"rupture_pr_auc": 0.4}},
            {"fraction": 1.0, "train_sessions": 20, "figures": {"rupture_pr_auc": 0.5}}]
    s = summarise(runs)
    assert s["by_fraction"]["0.5"]["rupture_pr_auc"] == pytest.approx(0.3)
    assert s["by_fraction"]["0.5"]["draws"] == 2 and s["by_fraction"]["1.0"]["rupture_pr_auc_sd"] is None
    assert s["slope_per_doubling"]["rupture_pr_auc"] == pytest.approx(0.2)


def test_quality_threshold_halves_keep_a_recording_together_and_its_copies_out_of_training(corpus_session):
    from quality_threshold import splits

    low = [corpus_session("hlqc_low", f"low_{i}", i) for i in range(12)]
    low.append(corpus_session("hlqc_low", "low_dup", 5))  # repeats low_5
    high = [corpus_session("hlqc_high", f"high_{i}", 50 + i) for i in range(6)]
    high.append(corpus_session("hlqc_high", "high_dup", 5))  # repeats low_5 too
    others = [corpus_session(c, f"{c}_{i}", 200 + 10 * k + i) for k, c in enumerate(("annomi", "hope", "rogers"))
              for i in range(2)]
    out = splits(low + high + others)
    assert len(out) == 5
    for name, (train, test) in out.items():
        ids, trained = {s.session_id for s in test}, {s.session_id for s in train}
        assert not ids & trained
        if ids & {"low_5", "low_dup", "high_dup"}:  # a copy of a test recording is never trained on
            assert not trained & {"low_5", "low_dup", "high_dup"}
        if name.startswith("HLQC low"):
            assert {"low_5", "low_dup"} <= ids or not {"low_5", "low_dup"} & ids
    tested_low = [s.session_id for n, (_, t) in out.items() if n.startswith("HLQC low") for s in t]
    assert sorted(tested_low) == sorted(s.session_id for s in low)
