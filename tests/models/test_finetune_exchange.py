"""The exchange input of models/recipes/finetune_exchange.py (fast: the tokenizer only, no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from finetune_exchange import FinetuneCoder  # noqa: E402


@pytest.fixture(scope="module")
def coder():
    return FinetuneCoder({}, max_length=32, turn_tokens=10)


def test_the_turn_is_last_its_context_cut_from_the_left_and_the_length_bounded(coder, make_session):
    long_context = " ".join(f"word{i}" for i in range(60))
    s = make_session([("T", "opening " + long_context), ("C", "first reply"), ("T", "middle question"),
                      ("C", "alpha beta gamma")])
    tok = coder._tokenizer()
    ids = coder._encode(s, 3)
    assert len(ids) <= 32
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    sep = ids.index(tok.sep_token_id)
    assert tok.decode(ids[sep + 1:-1]) == "client : alpha beta gamma"
    # the two previous turns, role-tagged; the oldest (turn 0) is not in it
    assert tok.decode(ids[1:sep]) == "client : first reply therapist : middle question"

    ids = coder._encode(s, 1)  # the context is turn 0 only, too long: its end is kept
    sep = ids.index(tok.sep_token_id)
    assert len(ids) == 32 and tok.decode(ids[1:sep]).endswith("word58 word59")
    assert tok.decode(ids[sep + 1:-1]) == "client : first reply"


def test_a_long_turn_is_cut_to_turn_tokens_and_the_first_turn_has_no_context(coder, make_session):
    s = make_session([("C", " ".join(["no"] * 40))])
    tok = coder._tokenizer()
    ids = coder._encode(s, 0)
    assert ids[:2] == [tok.cls_token_id, tok.sep_token_id]
    assert len(ids) == 2 + 10 + 1
