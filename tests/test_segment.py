"""Turn segmentation: notes, markup, merging, back-channels, utterances, provenance, annotations."""

from __future__ import annotations

import copy

import pytest

from pipeline.records import Annotation
from pipeline.preprocess.segment import SegmentConfig, extract_nonverbal, is_backchannel, segment_session


def test_segment_extract_nonverbal_in_text_order():
    clean, notes = extract_nonverbal(
        "(long pause) Well, I went [sighs] home to (my sister) and (C: M-hm.) she was fine.")
    assert clean == "Well, I went home to (my sister) and she was fine."
    assert notes == ("(long pause)", "[sighs]", "(C: M-hm.)")


@pytest.mark.parametrize(
    "aside",
    ["(my sister)", "(the minister)", "(my secretary)", "(I was sober then)", "(a long story)",
     "(in Boston)", "(the crystal one)", "(I don't drink)", "(it was a secret)"],
)
def test_segment_keeps_ordinary_parentheses(aside):
    assert extract_nonverbal(f"She told me {aside} yesterday.") == (f"She told me {aside} yesterday.", ())


@pytest.mark.parametrize(
    "note",
    ["(laughs)", "(Pause 8 seconds.)", "(crying)", "(Nods.)", "(inaudible)", "(S: Mhm.)", "[crosstalk]",
     "(2 min)", "(clears throat)", "(Phone rings)", "(sighs)", "(hm)", "[Therapist leans forward.]",
     "(4 second\npause.)"],
)
def test_segment_extracts_stage_directions(note):
    assert extract_nonverbal(f"I know {note} it is.") == ("I know it is.", (note,))


def test_segment_strips_markup():
    clean, notes = extract_nonverbal("<v Sam><i>Really</i>,   I <b>mean</b>\nit.</v>")
    assert (clean, notes) == ("Really, I mean it.", ())


def test_segment_cleans_every_turn(make_session):
    seg = segment_session(make_session([("T", "Hello <i>there</i> (smiles)"), ("C", "[sighs] Hi.")]))
    assert [(t.text, t.clean_text, t.nonverbal) for t in seg.turns] == [
        ("Hello <i>there</i> (smiles)", "Hello there", ("(smiles)",)), ("[sighs] Hi.", "Hi.", ("[sighs]",))]


def test_segment_merges_same_speaker_fragments_with_provenance(make_session):
    session = make_session([("T", "First part", 0.0, 2.0), ("T", "(pause) second part.", 2.5, 4.0),
                            ("C", "Okay.", 4.5, 5.0), ("T", "Go on.", 6.0, 7.0)])
    seg = segment_session(session)
    assert [t.index for t in seg.turns] == [0, 1, 2]
    first = seg.turns[0]
    assert (first.text, first.clean_text, first.nonverbal) == (
        "First part\n(pause) second part.", "First part second part.", ("(pause)",))
    assert (first.start_s, first.end_s) == (0.0, 4.0)
    assert (first.source.lines, first.source.turn_ids) == ((2, 3), ("1", "2"))
    assert [t.source.turn_ids for t in seg.turns[1:]] == [("3",), ("4",)]
    assert seg.meta["input_turns"] == 4 and seg.meta["merged_turns"] == 1
    assert seg.meta["segmentation"] == SegmentConfig().version


def test_segment_other_speaker_backchannel_splits_monologue(make_session):
    session = make_session([("T", "So what I wanted to say is this."), ("C", "Mm-hmm."),
                            ("T", "It has been a long week for you.")])
    seg = segment_session(session)
    assert [(t.speaker_id, t.clean_text) for t in seg.turns] == [
        ("T", "So what I wanted to say is this."), ("C", "Mm-hmm."), ("T", "It has been a long week for you.")]


@pytest.mark.parametrize(("text", "expected"), [
    ("Mm-hmm.", True), ("yeah", True), ("Uh huh", True), ("Okay, right.", True), ("I see", True),
    ("I disagree with that", False), ("No.", False), ("", False), ("yeah yeah yeah yeah", False)])
def test_segment_is_backchannel(text, expected):
    assert is_backchannel(text) is expected


def test_segment_different_speaker_ids_of_one_role_stay_apart(make_session):
    seg = segment_session(make_session([("Client 1", "I think so."), ("Client 2", "I don't.")]))
    assert [t.speaker_id for t in seg.turns] == ["Client 1", "Client 2"]


def test_segment_max_merge_gap(make_session):
    session = make_session([("T", "a", 0.0, 1.0), ("T", "b", 1.5, 2.0), ("T", "c", 10.0, 11.0),
                            ("C", "d", 12.0, 13.0)])
    seg = segment_session(session, SegmentConfig(max_merge_gap_s=2.0))
    assert [(t.clean_text, t.start_s, t.end_s) for t in seg.turns] == [
        ("a b", 0.0, 2.0), ("c", 10.0, 11.0), ("d", 12.0, 13.0)]
    unmerged = segment_session(session, SegmentConfig(merge_same_speaker=False))
    assert len(unmerged.turns) == 4


def test_segment_long_turn_gets_utterances_but_stays_one_turn(make_session):
    sentences = [f"This is sentence number {k} and it goes on for a while." for k in range(20)]
    seg = segment_session(make_session([("C", " ".join(sentences)), ("T", "Short. Two.")]))
    assert len(seg.turns) == 2
    assert seg.turns[0].utterances == tuple(sentences)
    assert seg.turns[1].utterances == ("Short. Two.",)
    short_limit = segment_session(make_session([("T", "Short. Two.")]), SegmentConfig(split_chars=5))
    assert short_limit.turns[0].utterances == ("Short.", "Two.")


def test_segment_remaps_annotations_on_merge(make_session):
    notes = [
        Annotation("s1", 0, "rupture", "none"), Annotation("s1", 1, "rupture", "withdrawal"),
        Annotation("s1", 0, "markers", "withdrawal.denial"), Annotation("s1", 1, "markers", "withdrawal.denial"),
        Annotation("s1", 1, "markers", "withdrawal.topic_shift"), Annotation("s1", 2, "repair", "repair"),
        Annotation("s1", 1, "rupture", "confrontation", 0.7, "model:x@1"),
    ]
    session = make_session([("C", "No."), ("C", "Let's talk about the weather."), ("T", "Hm, okay.")],
                           annotations=tuple(notes))
    seg = segment_session(session)
    got = {(a.turn, a.layer, a.code, a.source) for a in seg.annotations}
    assert got == {
        (0, "rupture", "withdrawal", "human:unknown"), (0, "markers", "withdrawal.denial", "human:unknown"),
        (0, "markers", "withdrawal.topic_shift", "human:unknown"), (1, "repair", "repair", "human:unknown"),
        (0, "rupture", "confrontation", "model:x@1"),
    }


def test_segment_does_not_mutate_input(make_session):
    session = make_session([("T", "a [sighs]"), ("T", "b"), ("C", "c")],
                           annotations=(Annotation("s1", 2, "rupture", "withdrawal"),))
    before = copy.deepcopy(session)
    seg = segment_session(session)
    assert session == before and session.meta == before.meta == {}
    assert [t.clean_text for t in session.turns] == ["", "", ""]
    assert seg is not session and len(seg.turns) == 2
    assert seg.annotations == (Annotation("s1", 1, "rupture", "withdrawal"),)


def test_segment_no_space_left_before_punctuation():
    assert extract_nonverbal("I know (laughs), right [sighs].") == ("I know, right.", ("(laughs)", "[sighs]"))


def test_segment_turn_over_a_million_characters_is_split_not_refused():
    """Issue 16, item 7: spaCy's sentencizer refuses texts over 1,000,000 characters (E088)."""
    from pipeline.preprocess.segment import split_utterances

    text = "This is one sentence. " * 60_000  # 1.32 million characters
    parts = split_utterances(text.strip(), 600)
    assert len(parts) >= 59_000 and all(len(p) < 100_000 for p in parts)
    assert "".join(p.replace(" ", "") for p in parts) == text.replace(" ", "")
