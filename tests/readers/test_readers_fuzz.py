"""Fuzzing the readers with hypothesis: junk never escapes as anything but a RuptureCoderError,
and canonical CSV and JSONL round-trip any text."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import RuptureCoderError
from pipeline.io.readers import FORMATS, ReadOptions, read_file

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMES = ["f.csv", "f.tsv", "f.jsonl", "f.txt", "f.vtt", "f.srt", "f.docx", "f"]

# Pieces of real transcript syntax, so the fuzzer reaches the parsers and not only the decoder.
FRAGMENTS = [
    "speaker,text\n", "session_id,turn,speaker,text,start,end\n", "T,", "C,", '"', '""', ",", "\n", "\r\n",
    "\t", "T: ", "Client 1: ", "T12 ", "C13: ", "WEBVTT\n\n", "00:00:01.000 --> 00:00:02.000\n",
    "1\n00:00:01,000 --> 00:00:02,000\n", "<v Dr Lee>", "{", "}", '{"speaker": "T", "text": "a"}', "[", "]",
    "12:34", "nan", "\ufeff", "therapist (C) (Carl Rogers), and the client (S)", "Rogers", "END OF SESSION\n",
    "C Commentary 1: [", "S 2 (continued): ", "ID,Type,Utterance\n", "(pause)", "é", "\x85", "\u2028",
]
junk = st.one_of(
    st.binary(max_size=1500),
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=60).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
    st.text(max_size=300).map(lambda s: s.encode("utf-16", "surrogatepass")),
)


@FUZZ
@given(data=junk, name=st.sampled_from(NAMES), fmt=st.sampled_from((None, *FORMATS)))
def test_readers_fuzz_junk_raises_only_rupture_coder_errors(tmp_path, data, name, fmt):
    path = tmp_path / name
    path.write_bytes(data)
    try:
        result = read_file(path, ReadOptions(fmt=fmt))
    except RuptureCoderError as err:
        assert str(err)
        return
    assert result.sessions or result.problems


SPEAKERS = ["T", "C", "Therapist", "Client 1", "Client 2", "counsellor", "P"]
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1, max_size=40,
).filter(str.strip) | st.sampled_from(['a, "quoted", b', "line one\nline two", "x\r\ny", '"', "\u2028,\x85"])
SESSIONS = st.lists(st.lists(st.tuples(st.sampled_from(SPEAKERS), TEXT), min_size=1, max_size=8),
                    min_size=1, max_size=3)
SESSION_IDS = ["s1", "séance, 2", 'the "third"']


def _rows(sessions):
    return [
        {"session_id": SESSION_IDS[k], "turn": n + 1, "speaker": speaker, "text": text}
        for k, turns in enumerate(sessions) for n, (speaker, text) in enumerate(turns)
    ]


def _read_back(path):
    result = read_file(path)
    return [[(t.speaker_id, t.text) for t in s.turns] for s in result.sessions], result


@FUZZ
@given(sessions=SESSIONS)
def test_readers_fuzz_csv_round_trip(tmp_path, sessions):
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=["session_id", "turn", "speaker", "text"])
    writer.writeheader()
    writer.writerows(_rows(sessions))
    path = tmp_path / "round.csv"
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    got, result = _read_back(path)
    assert got == [list(turns) for turns in sessions]
    assert [s.session_id for s in result.sessions] == SESSION_IDS[: len(sessions)]
    assert all(p.level == "warning" for p in result.problems)


@FUZZ
@given(sessions=SESSIONS)
def test_readers_fuzz_jsonl_round_trip(tmp_path, sessions):
    lines = [json.dumps(row, ensure_ascii=False) for row in _rows(sessions)]
    path = tmp_path / "round.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    got, result = _read_back(path)
    assert got == [list(turns) for turns in sessions]
    assert [[t.source.turn_ids for t in s.turns] for s in result.sessions] == [
        [(str(n + 1),) for n in range(len(turns))] for turns in sessions]
