"""The miss breakdown of models/recipes/error_breakdown.py (fast: hand-made rows)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from error_breakdown import breakdown  # noqa: E402


def row(gold, score, words, markers=()):
    return {"gold": gold, "markers": list(markers), "score": score, "words": words}


ROWS = [
    row("confrontation", 0.9, 25, ["confrontation.complaint_therapist"]),
    row("confrontation", 0.4, 12, ["confrontation.rejects_intervention"]),
    row("withdrawal", 0.3, 2, ["withdrawal.minimal_response"]),
    row("withdrawal", 0.05, 1, ["withdrawal.minimal_response"]),
    row("none", 0.5, 30), row("none", 0.2, 5), row("none", 0.1, 2), row("none", 0.01, 70),
]


def test_recall_at_the_threshold_and_at_the_gold_rate():
    out = breakdown(ROWS, threshold=0.45)
    assert out["gold_rate"] == 0.5 and out["flagged_rate"] == 0.25  # 0.9 and 0.5 flagged
    assert out["all"] == {"turns": 8, "ruptures": 4, "recall_at_threshold": 0.25,
                          "recall_at_gold_rate": 0.75, "roc_auc": 0.688}
    # the four highest scores (0.9, 0.5, 0.4, 0.3) are flagged at the gold rate
    assert out["family"]["confrontation"]["recall_at_gold_rate"] == 1.0
    assert out["family"]["confrontation"]["turns"] == 6  # its 2 ruptures and the 4 none turns
    assert out["family"]["withdrawal"]["recall_at_gold_rate"] == 0.5
    assert out["family"]["withdrawal"]["recall_at_threshold"] == 0.0


def test_markers_and_turn_lengths():
    out = breakdown(ROWS, threshold=0.45)
    minimal = out["marker"]["withdrawal.minimal_response"]
    assert minimal == {"turns": 2, "ruptures": 2, "recall_at_threshold": 0.0, "recall_at_gold_rate": 0.5}
    assert "roc_auc" not in minimal  # one class only
    assert set(out["words"]) == {"0-2", "3-7", "8-19", "20-59", "60+"}
    assert out["words"]["0-2"] == {"turns": 3, "ruptures": 2, "recall_at_threshold": 0.0,
                                   "recall_at_gold_rate": 0.5, "roc_auc": 0.5}
    assert out["words"]["60+"] == {"turns": 1, "ruptures": 0}


def test_no_rows_and_no_ruptures():
    assert breakdown([], 0.5) == {"turns": 0}
    out = breakdown([row("none", 0.7, 4), row("none", 0.1, 9)], 0.5)
    assert out["all"] == {"turns": 2, "ruptures": 0} and out["flagged_rate"] == 0.5
