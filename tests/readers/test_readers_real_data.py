"""The readers on the real public transcripts in ../shared/data (never copied into the repo).

Exact counts pin the readers' behaviour: a change that drops or invents turns fails here.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.io.readers import read_file
from pipeline.preprocess.segment import segment_session

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data"
ROGERS = DATA / "rogers" / "rogers_vol12_without_gloria.txt"
HOPE_TURNS = {"163": 115, "204": 48, "206": 72, "27": 62, "48": 48, "67": 54, "75": 54, "97": 26}
# Input turns per Rogers session, and the lines of dialogue they hold (turn line plus its
# continuation lines). Checked against the raw file: every line outside the turns is a title,
# legend, licence notice, page footer, footnote, bracketed or "X Commentary N:" commentary, an end
# marker or post-session commentary.
ROGERS_TURNS = {"sylvia_4": 110, "sylvia_5": 126, "kathy": 187, "dione_1": 125, "dione_2": 299}
ROGERS_DIALOGUE_LINES = {"sylvia_4": 305, "sylvia_5": 292, "kathy": 373, "dione_1": 518, "dione_2": 741}
# A line that starts a turn: a speaker code, numbered or not ("S 2:", "C13:", "T146 ...",
# "S1 (continued):"), or a first name ("Carl:", "Sylvia1:").
CODE_LINE = re.compile(r"^(?:[CST]\s?\d{0,4}|Carl|Sylvia\d*|Rogers)(?:\s*\(continued\))?\s*:|^[CST]\s?\d{1,4}\s+\S")
ROGERS_INTRODUCTION_LINE = 888  # Rogers's spoken introduction before the Kathy interview: not dialogue
STRUCTURE = re.compile(r"Transcripts, Volume|Commentary|^\[|^END\b|FINAL COMMENT|transcript is available")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} not present"),
]


def assert_provenance_kept(session) -> None:
    """Every input turn id appears exactly once among the segmented turns' sources."""
    segmented = segment_session(session)
    ids = Counter(i for turn in segmented.turns for i in turn.source.turn_ids)
    assert ids == Counter(i for turn in session.turns for i in turn.source.turn_ids)
    assert max(ids.values()) == 1
    assert sum(len(t.source.lines) for t in segmented.turns) == len(session.turns)


def test_readers_real_annomi():
    result = read_file(DATA / "annomi" / "annomi_dev.csv")
    assert (result.format, len(result.sessions)) == ("annomi", 98)
    assert sum(len(s.turns) for s in result.sessions) == 7648
    assert not [p for p in result.problems if p.level == "error"]
    # one malformed timestamp ("00:09:025"): a warning, and that turn has no time
    [bad_time] = [p for p in result.problems if p.code == "turns.bad_time"]
    assert (bad_time.level, bad_time.line) == ("warning", 2118)
    turn = next(t for s in result.sessions for t in s.turns if t.source.lines == (2118,))
    assert turn.start_s is None
    assert {p.code for p in result.problems} <= {"turns.bad_time", "turns.non_monotonic_time"}
    for session in result.sessions:
        assert_provenance_kept(session)


def test_readers_real_hlqc():
    result = read_file(DATA / "hlqc" / "hlqc_dev.csv")
    assert (result.format, len(result.sessions)) == ("hlqc", 214)
    assert sum(len(s.turns) for s in result.sessions) == 9029
    assert result.problems == []
    assert {t.speaker_role for s in result.sessions for t in s.turns} == {"therapist", "client"}
    for session in result.sessions:
        assert_provenance_kept(session)


@pytest.mark.parametrize(("stem", "turns"), sorted(HOPE_TURNS.items()))
def test_readers_real_hope(stem, turns):
    result = read_file(DATA / "hope" / f"{stem}.csv")
    [session] = result.sessions
    assert (result.format, session.session_id, len(session.turns)) == ("hope", stem, turns)
    assert result.problems == []
    assert_provenance_kept(session)


def test_readers_real_rogers_sessions_and_turns():
    result = read_file(ROGERS)
    assert result.format == "rogers" and result.problems == []
    assert {s.session_id: len(s.turns) for s in result.sessions} == ROGERS_TURNS
    assert list(ROGERS_TURNS) == [s.session_id for s in result.sessions]
    dialogue = {s.session_id: sum(len(t.text.split("\n")) for t in s.turns) for s in result.sessions}
    assert dialogue == ROGERS_DIALOGUE_LINES
    for session in result.sessions:
        assert {t.speaker_role for t in session.turns} == {"therapist", "client"}
        assert len({t.speaker_id for t in session.turns}) == 2  # "Carl:" and "C 1:" are one speaker
        assert_provenance_kept(session)


def test_readers_real_rogers_turn_ids_are_code_lines():
    lines = ROGERS.read_text(encoding="utf-8").splitlines()
    turns = [t for s in read_file(ROGERS).sessions for t in s.turns]
    assert all(t.source.turn_ids == (str(t.source.lines[0]),) for t in turns)  # ids are line numbers
    turn_lines = {t.source.lines[0] for t in turns}
    code_lines = {n for n, line in enumerate(lines, start=1) if CODE_LINE.match(line)}
    assert code_lines - turn_lines == {ROGERS_INTRODUCTION_LINE}  # no real turn lost
    assert turn_lines - code_lines == set()  # and nothing else became a turn


def test_readers_real_rogers_turns_hold_no_commentary_or_page_furniture():
    for session in read_file(ROGERS).sessions:
        for turn in session.turns:
            for line in turn.text.split("\n"):
                assert not STRUCTURE.search(line), (session.session_id, turn.source.lines)
