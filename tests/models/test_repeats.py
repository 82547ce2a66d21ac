"""Repeated recordings (pipeline/modeling/repeats.py) and how the evaluators keep them on one
side of a split."""

from __future__ import annotations

import random
from dataclasses import replace

from pipeline.modeling.estimator import RuptureCoder
from pipeline.modeling.evaluate import cross_validate, leave_one_corpus_out, metrics_markdown
from pipeline.modeling.repeats import recording_groups, recording_halves, repeat_pairs, without_repeats


def _words(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [f"w{rng.randrange(10**6)}" for _ in range(n)]


def _session(make_session, sid: str, seed: int, n: int = 120, edit: int = 0):
    words = _words(seed, n)
    for k in range(edit):  # a second transcriber's differences: one word in every ten changed
        words[k * 10] = "uh"
    return make_session([("T", " ".join(words[:n // 2])), ("C", " ".join(words[n // 2:]))], session_id=sid)


def test_a_recording_transcribed_twice_is_found_and_distinct_sessions_are_not(make_session):
    a = _session(make_session, "a", 1)
    again = _session(make_session, "a_again", 1, edit=6)  # 6 of 120 words differ
    b = _session(make_session, "b", 2)
    c = _session(make_session, "c", 3)
    assert repeat_pairs([a, again, b, c]) == [(0, 1)]
    assert repeat_pairs([b, again], [c, a]) == [(1, 1)]  # between two lists: (index in the first, in the second)
    assert repeat_pairs([a, b], [c]) == []


def test_a_set_phrase_in_many_sessions_does_not_make_them_repeats(make_session):
    phrase = " ".join(_words(0, 30))  # a transcriber's boilerplate, 30 words, in every session
    sessions = [make_session([("T", phrase), ("C", " ".join(_words(k + 10, 20)))], session_id=f"s{k}") for k in range(25)]
    assert repeat_pairs(sessions) == []


def test_recording_groups_are_transitive_and_join_sessions_with_one_id(make_session):
    a = _session(make_session, "a", 1)
    a2 = _session(make_session, "a2", 1, edit=3)
    a3 = _session(make_session, "a3", 1, edit=6)
    b = _session(make_session, "b", 2)
    b_elsewhere = _session(make_session, "b", 5)  # another file's session with the same id
    c = _session(make_session, "c", 3)
    g = recording_groups([a, b, a2, c, a3, b_elsewhere])
    assert g[0] == g[2] == g[4] and g[1] == g[5]
    assert len({g[0], g[1], g[3]}) == 3


def test_recording_halves_keep_a_recording_in_one_half_whatever_the_order(make_session):
    sessions = [_session(make_session, f"s{k}", k) for k in range(12)]
    sessions += [_session(make_session, f"s{k}_again", k, edit=4) for k in range(12)]
    halves = recording_halves(sessions)
    assert all(halves[k] == halves[k + 12] for k in range(12))
    assert set(halves[:12]) == {0, 1}  # twelve recordings do not all hash to one half
    backwards = recording_halves(sessions[::-1])[::-1]
    assert backwards == halves


def test_without_repeats(make_session):
    a, b, c = (_session(make_session, s, k) for k, s in enumerate("abc"))
    again = _session(make_session, "a_again", 0, edit=2)
    kept, left_out = without_repeats([b, again, c], [a])
    assert kept == [b, c] and left_out == 1


def _with_copy(make_corpus):
    """Two corpora of synthetic sessions; the first session of ``beta`` is a repeat (another id)
    of the first session of ``alpha``."""
    alpha = [replace(s, meta={"corpus": "alpha"}) for s in make_corpus(6, seed=11, prefix="alpha")]
    beta = [replace(s, meta={"corpus": "beta"}) for s in make_corpus(6, seed=12, prefix="beta")]
    beta[0] = replace(alpha[0], session_id="beta-copy", meta={"corpus": "beta"})
    return alpha, beta


def test_leave_one_corpus_out_trains_without_the_repeats_of_its_test_sessions(make_corpus):
    fits = []

    class Spy(RuptureCoder):
        def fit(self, sessions, y=None):
            fits.append([s.session_id for s in sessions])
            return super().fit(sessions, y)

    alpha, beta = _with_copy(make_corpus)
    result = leave_one_corpus_out(alpha + beta, lambda: Spy(embedder="hashing.v1", cv=2),
                                  {"to alpha": (["beta"], ["alpha"]), "to beta": (["alpha"], ["beta"])})
    assert "beta-copy" not in fits[0] and len(fits[0]) == 5
    assert alpha[0].session_id not in fits[1] and len(fits[1]) == 5
    assert result["to alpha"]["repeats_left_out"] == result["to beta"]["repeats_left_out"] == 1
    assert "1 training session(s) repeated a test session" in metrics_markdown("x", result["to alpha"])


def test_cross_validate_keeps_a_repeat_in_its_recording_s_fold(make_corpus):
    scored = []

    class Spy(RuptureCoder):
        def predict_proba(self, sessions):
            scored.append([s.session_id for s in sessions])
            return super().predict_proba(sessions)

    alpha, beta = _with_copy(make_corpus)
    result = cross_validate(alpha + beta, lambda: Spy(embedder="hashing.v1", cv=2), folds=3)
    fold = next(ids for ids in scored if "beta-copy" in ids)
    assert alpha[0].session_id in fold
    assert result["recordings"] == 11
    assert "Folds grouped by recording: 11 recordings" in metrics_markdown("x", result)
