"""The exchange input of models/recipes/finetune_exchange.py (fast: the tokenizer only, no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from finetune_exchange import FinetuneCoder, _Net  # noqa: E402


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


def _toy(coder, make_session):
    s = make_session([("T", "you need to stop drinking now"), ("C", "fine whatever"),
                      ("T", "it sounds like that felt like pressure"), ("C", "yes it did")])
    seqs = [coder._encode(s, i) for i in range(4)]
    yc = np.array([-1, 1, -1, 0])
    yt = np.array([0, -1, 1, -1])
    return seqs, yc, yt


def test_the_adapter_candidate_trains_its_adapters_and_heads_and_leaves_the_encoder_weights(make_session):
    pytest.importorskip("peft")
    torch = pytest.importorskip("torch")
    coder = FinetuneCoder({}, max_length=32, turn_tokens=10, batch=2, lr=1e-2, aux=True, lora_r=2)
    seqs, yc, yt = _toy(coder, make_session)
    ym = np.zeros((4, 3), dtype=np.float32)
    ym[1, 0] = 1
    ys = np.zeros((4, 2), dtype=np.float32)
    ys[2, 1] = 1
    torch.manual_seed(0)
    untouched = _Net(coder.path_, 3, 2, lora_r=2)
    net = coder._train(seqs, yc, yt, seed=0, ym=ym, ys=ys)
    assert net.markers.out_features == 3 and net.strategies.out_features == 2
    trained = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n or not n.startswith("encoder.") for n in trained)
    before, after = dict(untouched.named_parameters()), dict(net.named_parameters())
    base = [n for n in after if n.startswith("encoder.") and "lora_" not in n]
    assert base and all(torch.equal(before[n], after[n]) for n in base)  # same init seed, frozen
    assert any(not torch.equal(before[n], after[n]) for n in after if "lora_B" in n)  # adapters moved
    pc, pt = coder._predict(net, seqs)
    assert pc.shape == (4, 3) and pt.shape == (4, 2) and np.allclose(pc.sum(1), 1)


def test_the_plain_candidate_has_no_auxiliary_heads_and_trains_every_weight(make_session):
    coder = FinetuneCoder({}, max_length=32, turn_tokens=10, batch=2)
    seqs, yc, yt = _toy(coder, make_session)
    net = coder._train(seqs, yc, yt, seed=0)
    assert net.markers is None and net.strategies is None
    assert all(p.requires_grad for p in net.parameters())
