"""The short-reply candidate of ``models/recipes/short_reply_context.py`` (issue 12): the
previous turn's embedding, gated on the reply's length, as one more block of features."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from short_reply_context import SHORT_WORDS, ShortReplyContext, short_reply_block  # noqa: E402

from pipeline.modeling.embed import embed_cached, get_embedder  # noqa: E402
from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.features import turn_text  # noqa: E402

PARAMS = dict(embedder="hashing.v1", cv=3, text_view=True, corpus_threshold=True, repair_marks=True)


def test_the_block_holds_the_previous_turn_of_the_other_party_for_short_turns_only(build):
    long_reply = " ".join(["word"] * (SHORT_WORDS + 1))
    session = build("s", [("T1", "You should really stop now."), ("C1", "Fine, whatever."),
                          ("I1", "Interpreting."), ("T1", "Tell me more?"), ("C1", long_reply)])
    assert len(session.turns) == 5
    emb = np.arange(5 * 4, dtype=np.float32).reshape(5, 4) + 1
    block = short_reply_block(session, emb)
    assert block.shape == emb.shape
    assert not block[0].any()                       # nothing before the first turn
    assert np.array_equal(block[1], emb[0])         # a 2-word reply reads the therapist's turn
    assert np.array_equal(block[3], emb[1])         # a therapist's short turn reads the client's, not the interpreter's
    assert not block[4].any()                       # a reply of more than SHORT_WORDS words: zeros


def test_the_candidate_adds_the_block_to_every_turns_features_and_still_codes(train_sessions, test_sessions):
    base = RuptureCoder(**PARAMS)
    candidate = ShortReplyContext(**PARAMS)
    f_base, f_cand = base._features(test_sessions[:2]), candidate._features(test_sessions[:2])
    vectors = embed_cached([turn_text(t) for s in test_sessions[:2] for t in s.turns], get_embedder("hashing.v1"), None)
    start = 0
    for session, fb, fc in zip(test_sessions[:2], f_base, f_cand):
        block = short_reply_block(session, vectors[start:start + len(session.turns)])
        start += len(session.turns)
        assert block.any() and fc.dtype == fb.dtype
        assert np.array_equal(fc, np.hstack([fb, block]))
    fitted = candidate.fit(train_sessions)
    (scores,) = fitted.predict_proba(test_sessions[:1])
    client = [t.index for t in test_sessions[0].turns if t.speaker_role == "client"]
    assert np.allclose(scores.rupture[client].sum(axis=1), 1.0)


def test_the_boosted_candidate_is_the_default_configuration_with_another_head_only():
    from nonlinear_head import BOOSTED, DEFAULT, MAKERS

    default, boosted = dict(MAKERS[DEFAULT]), dict(MAKERS[BOOSTED])
    assert boosted.pop("head") == "hgb" and default.get("head", "logreg") == "logreg"
    assert boosted == {k: v for k, v in default.items() if k != "head"} and default["repair_marks"]
