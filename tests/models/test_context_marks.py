"""What the text view's tokenizer keeps of an exchange text, and the context-marking candidates
of ``models/recipes/context_marks.py`` (issue 12)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from pipeline.modeling.context import exchange_text

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))


@pytest.fixture
def exchange(build):
    return build("x", [("T1", "You should stop, really."), ("C1", "I don't know."), ("T1", "OK?"),
                       ("C1", "Fine, whatever you say.")])


def tokens(text: str) -> list[str]:
    return HashingVectorizer(ngram_range=(1, 1)).build_analyzer()(text)


def test_the_default_view_reads_context_and_turn_as_one_bag(exchange):
    # the role letters and separators of exchange_text never reach the view (documented in its
    # docstring); the shipped bundles were trained this way, so the text itself stays as it is
    assert exchange_text(exchange, 3) == "C i don't know. || T ok? >> fine, whatever you say."
    assert tokens(exchange_text(exchange, 3)) == ["don", "know", "ok", "fine", "whatever", "you", "say"]


def test_the_marked_context_keeps_each_context_words_speaker(exchange):
    from context_marks import marked_exchange

    marked = tokens(marked_exchange(exchange, 3, pooled=False))
    assert marked == ["c_don", "c_know", "t_ok", "fine", "whatever", "you", "say"]
    both = tokens(marked_exchange(exchange, 3, pooled=True))
    assert both == ["c_don", "c_know", "don", "know", "t_ok", "ok", "fine", "whatever", "you", "say"]
    assert tokens(marked_exchange(exchange, 0, pooled=True)) == ["you", "should", "stop", "really"]


def test_the_recipes_verdicts_keep_the_rule_and_the_confirmation_apart():
    from context_marks import BOTH, DEFAULT, MARKED, verdicts

    def order(d, m, b=None):
        return {DEFAULT: {"selection": d}, MARKED: {"selection": m}, **({BOTH: {"selection": b}} if b else {})}

    orders = {o: order(0.25, 0.26, 0.251) for o in ("pool", "seed 0", "seed 1", "seed 2", "seed 3")}
    orders.update({"seed 7": order(0.25, 0.252), "seed 8": order(0.25, 0.26)})
    out = verdicts({"orders": orders})
    assert out[MARKED]["rule"]["replaces_default"] is True and out[MARKED]["rule"]["complete"] is True
    assert out[MARKED]["confirmation"]["complete"] is False and out[MARKED]["confirmation"]["gains"] == [0.002, 0.01]
    assert out[BOTH]["rule"]["replaces_default"] is False and "confirmation" not in out[BOTH]


def test_the_repair_view_candidate_marks_therapist_turns_views_only(exchange):
    from context_marks import MarkedRepairView, marked_exchange

    texts = MarkedRepairView()._view_texts(exchange, [2, 3], False)
    assert texts == [marked_exchange(exchange, 2, False), exchange_text(exchange, 3)]
    rows = MarkedRepairView()._row_texts([exchange], [(0, 3), (0, 2)], False)
    assert rows == [exchange_text(exchange, 3), marked_exchange(exchange, 2, False)]
