"""pipeline.modeling.features: a turn read in the context of the turns before it, never after it."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.modeling.embed import HashingEmbedder
from pipeline.modeling.features import (N_CUES, FeatureConfig, is_question, previous_indices,
                               prior_rupture_features, session_features, turn_text)

DIM = 16
CUE = {name: i for i, name in enumerate((
    "position", "log_words", "question", "negation", "second_person", "first_person", "hedges",
    "backchannel", "n_nonverbal", "laugh", "pause", "prev_log_words", "prev_question",
    "short_after_long", "no_prev_other"))}
DYAD = [("T", "How was the week since we last met?"), ("C", "Fine."),
        ("T", "Just fine? You sounded stressed on the phone."), ("C", "I don't want to talk about it."),
        ("T", "Okay. Can we look at the worksheet?"), ("C", "Whatever you think. [sighs]")]


def features(session, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    embeddings = HashingEmbedder(DIM).encode([turn_text(t) for t in session.turns])
    return session_features(session, embeddings, config)


def cues(session) -> np.ndarray:
    return features(session)[:, -N_CUES:]


def test_features_shape_follows_the_config(build):
    session = build("s", DYAD)
    assert features(session).shape == (6, 3 * DIM + N_CUES)
    assert features(session, FeatureConfig(context=False)).shape == (6, DIM + N_CUES)
    assert features(session, FeatureConfig(cues=False)).shape == (6, 3 * DIM)
    assert features(session, FeatureConfig(False, False)).shape == (6, DIM)


@pytest.mark.parametrize("cut", range(1, len(DYAD)))
def test_features_later_turns_never_change_earlier_features(build, cut):
    changed = DYAD[:cut] + [(speaker, f"Something else entirely? No. [laughs] {i}")
                            for i, (speaker, _) in enumerate(DYAD[cut:])]
    before, after = features(build("s", DYAD)), features(build("s", changed))
    np.testing.assert_array_equal(before[:cut], after[:cut])
    assert not np.array_equal(before[cut:], after[cut:])


def test_features_context_columns_are_the_previous_turns_embeddings(build):
    session = build("s", DYAD)
    emb = HashingEmbedder(DIM).encode([turn_text(t) for t in session.turns])
    f = features(session)
    np.testing.assert_array_equal(f[3, DIM:2 * DIM], emb[2])  # previous other: therapist turn 2
    np.testing.assert_array_equal(f[3, 2 * DIM:3 * DIM], emb[1])  # own previous: turn 1
    assert not f[0, DIM:3 * DIM].any()  # first turn: no context at all
    assert f[0, -N_CUES + CUE["no_prev_other"]] == 1.0 and f[1, -N_CUES + CUE["no_prev_other"]] == 0.0


def test_features_previous_indices_in_a_dyad(build):
    prev_other, prev_own = previous_indices(build("s", DYAD))
    assert prev_other == [None, 0, 1, 2, 3, 4]
    assert prev_own == [None, None, 0, 1, 2, 3]


def test_features_previous_indices_skip_the_interpreter(build):
    session = build("s", [("T", "How are you?"), ("I", "¿Cómo está?"), ("C", "Bien."),
                          ("I", "Good."), ("T", "Good to hear."), ("I", "Me alegro.")])
    assert [t.speaker_role for t in session.turns] == ["therapist", "other", "client", "other",
                                                       "therapist", "other"]
    prev_other, prev_own = previous_indices(session)
    # the client answers the therapist (0), not the interpreter (1); the therapist answers the
    # client (2), not the interpretation (3); the interpreter follows the last non-interpreter
    assert prev_other == [None, 0, 0, 2, 2, 4]
    assert prev_own == [None, None, None, 1, 0, 3]


def test_features_previous_indices_interpreter_is_the_fallback_when_nobody_else_spoke(build):
    session = build("s", [("I", "Please sit down."), ("C", "Thanks.")])
    assert previous_indices(session)[0] == [None, 0]


def test_features_previous_indices_in_couples_use_the_speaker_not_the_role(build):
    session = build("s", [("T", "What brings you both?"), ("C1", "He never listens."),
                          ("C2", "That's not fair."), ("T", "Let's slow down."), ("C2", "Fine."),
                          ("C1", "Okay.")])
    prev_other, prev_own = previous_indices(session)
    # a partner is read against the therapist's last turn (ruptures are with the therapist)
    assert prev_other == [None, 0, 0, 2, 3, 3]
    # own previous turn is by speaker id: C2's own turn, not C1's
    assert prev_own == [None, None, None, 0, 2, 1]


def test_features_first_turn_of_a_client_has_no_own_context(build):
    session = build("s", [("C", "Hi."), ("T", "Hello."), ("C", "So.")])
    f = features(session)
    assert not f[0, DIM:3 * DIM].any()
    assert f[2, 2 * DIM:3 * DIM].any()


@pytest.mark.parametrize("text, cue, expected", [
    ("Why would that help?", "question", 1.0),
    ("do you really think so", "question", 1.0),
    ("I think so.", "question", 0.0),
    ("I don't know, it's not that.", "negation", 2 / 3),
    ("I don’t know and I won’t say.", "negation", 2 / 3),
    ("I cannot do this.", "negation", 1 / 3),
    ("That is right.", "negation", 0.0),
    ("Mm-hmm.", "backchannel", 1.0),
    ("Yeah, okay.", "backchannel", 1.0),
    ("Yeah, I went to the shop.", "backchannel", 0.0),
    ("You said your week was fine.", "second_person", 2 / 3),
    ("I guess, maybe.", "hedges", 1.0),
    ("I don’t know.", "hedges", 0.5),
])
def test_features_cues(build, text, cue, expected):
    session = build("s", [("T", "Tell me about the week and how it went for you."), ("C", text)])
    assert cues(session)[1, CUE[cue]] == pytest.approx(expected)


def test_features_cues_from_nonverbal_notes_and_the_previous_turn(build):
    session = build("s", [("T", "What did you make of the exercise we planned last time?"),
                          ("C", "Fine. [laughs] (long pause)")])
    c = cues(session)[1]
    assert c[CUE["n_nonverbal"]] == pytest.approx(2 / 3)
    assert c[CUE["laugh"]] == 1.0 and c[CUE["pause"]] == 1.0
    assert c[CUE["prev_question"]] == 1.0
    assert c[CUE["short_after_long"]] == 1.0
    assert c[CUE["position"]] == pytest.approx(1 / 200) and cues(session)[0, CUE["position"]] == 0.0


def test_features_turn_text_of_a_silent_turn_is_its_notes(build):
    session = build("s", [("T", "Take your time."), ("C", "[long silence]"), ("T", "")])
    assert turn_text(session.turns[1]) == "[long silence]"
    assert turn_text(session.turns[2]) == "[no speech]"


def test_features_is_question():
    assert is_question("Is it okay") and is_question("so, you think?")
    assert not is_question("It is okay.")


def test_features_prior_rupture_features_look_back_only(build):
    session = build("s", [("T", "a"), ("C", "b"), ("T", "c"), ("C", "d"), ("T", "e"), ("C", "f"),
                          ("T", "g")])
    p = np.array([0.0, 0.2, 0.0, 0.9, 0.0, 0.4, 0.0])
    out = prior_rupture_features(session, p, window=2)
    assert out.shape == (7, 3)
    np.testing.assert_allclose(out[0], 0.0)
    np.testing.assert_allclose(out[1], 0.0)  # a client turn never sees its own probability
    np.testing.assert_allclose(out[2], [0.2, 0.2, 0.2])
    np.testing.assert_allclose(out[4], [0.9, 0.9, 0.9])
    np.testing.assert_allclose(out[6], [0.9, 0.4, 0.4])  # window 2: max of 0.9 and 0.4
    later = p.copy()
    later[5] = 1.0
    np.testing.assert_array_equal(prior_rupture_features(session, later, window=2)[:6], out[:6])
