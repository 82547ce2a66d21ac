"""Hostile input (issue #16): zip bombs, impossible and implausible times, byte-order marks and
zero-width characters, files that are not regular files, inputs that hold no transcript and
duplicate column names. Every refusal is an InputFormatError or a Problem naming the file (and
line where there is one), never quoting the transcript's words, in bounded time and memory."""

from __future__ import annotations

import io
import os
import struct
import time
import tracemalloc
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.cli._app import app
from pipeline.errors import InputFormatError
from pipeline.io.files import file_sha256
from pipeline.io.readers import (
    _build,
    load_paths,
    parse_time,
    read_file,
    require_inputs,
)
from pipeline.io.readers import docx as docx_reader
from pipeline.io.readers.decode import ZERO_WIDTH

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
WORDS = ("hello", "Hi", "secret", "Sarah")  # transcript words that no message may quote

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'wordprocessingml.document.main+xml"/></Types>')
RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="word/document.xml"/></Relationships>')


def paragraph(text: str) -> bytes:
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>".encode()


def make_docx(body: bytes) -> bytes:
    """A minimal valid .docx whose document body is ``body`` (paragraph XML)."""
    document = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w='
                b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
                + body + b"</w:body></w:document>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr("word/document.xml", document)
    return buf.getvalue()


def assert_no_words(message: str) -> None:
    for word in WORDS:
        assert word not in message, message


@pytest.fixture
def no_python_docx(monkeypatch):
    """python-docx must never see a refused archive."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("python-docx opened an archive over the limits")
    monkeypatch.setattr(docx_reader.docx, "Document", refuse)


# --- .docx zip bombs --------------------------------------------------------------------------


def test_docx_helper_makes_a_readable_transcript(write_file):
    path = write_file("t.docx", make_docx(paragraph("T: hello") + paragraph("C: Hi") + b"<w:p/>"))
    [session] = read_file(path).sessions
    assert [(t.speaker_role, t.text) for t in session.turns] == [("therapist", "hello"), ("client", "Hi")]


def test_docx_bomb_over_the_decompressed_size_is_refused_before_parsing(write_file, monkeypatch, no_python_docx):
    monkeypatch.setattr(docx_reader, "MAX_UNCOMPRESSED_BYTES", 2**20)
    monkeypatch.setattr(docx_reader, "MAX_RATIO", 10**6)  # the size limit alone
    bomb = make_docx((paragraph("T: hello") + paragraph("C: Hi")) * 40_000)  # 3 MB of small paragraphs
    path = write_file("bomb.docx", bomb)
    with pytest.raises(InputFormatError, match=r"bomb\.docx: decompresses to too much data; expected a \.docx "
                                              r"of at most 1 MiB decompressed; found \d+ MiB declared; fix: ") as info:
        read_file(path)
    assert info.value.path == str(path)
    assert_no_words(str(info.value))


def test_docx_bomb_by_ratio_is_refused_quickly_under_the_real_limits(write_file, no_python_docx):
    bomb = make_docx(paragraph("T: hello") * 600_000)  # 20 MB of XML in about 60 KB
    assert len(bomb) < 200_000
    path = write_file("ratio.docx", bomb)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InputFormatError, match=r"ratio\.docx: compressed too densely to be a transcript "
                                                  r"\(a zip bomb\?\); expected parts at most 100 times"):
            read_file(path)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 5
    assert peak < len(bomb) + 8 * 2**20  # the file's bytes and a few MiB, never the 20 MB of XML


def test_docx_part_lying_about_its_size_is_refused(write_file, monkeypatch, no_python_docx):
    """A part whose declared size is small but whose data decompresses to far more: the bounded
    stream stops at the declared size and the archive is refused (bad CRC), never parsed."""
    monkeypatch.setattr(docx_reader, "MAX_RATIO", 10**6)
    data = bytearray(make_docx(paragraph("T: hello") * 200_000))
    central = data.rfind(b"PK\x01\x02")  # the last entry of the central directory: word/document.xml
    assert data[central + 46:central + 46 + 17] == b"word/document.xml"
    local = struct.unpack("<I", data[central + 42:central + 46])[0]
    data[central + 24:central + 28] = struct.pack("<I", 1000)  # declared uncompressed size
    data[local + 22:local + 26] = struct.pack("<I", 1000)
    path = write_file("liar.docx", bytes(data))
    start = time.perf_counter()
    with pytest.raises(InputFormatError, match=r"liar\.docx: not a readable \.docx file; expected a Word \.docx"):
        read_file(path)
    assert time.perf_counter() - start < 5


def test_docx_too_many_paragraphs_is_refused(write_file, monkeypatch, no_python_docx):
    monkeypatch.setattr(docx_reader, "MAX_PARAGRAPHS", 50)
    path = write_file("long.docx", make_docx(paragraph("T: hello") * 51))
    with pytest.raises(InputFormatError, match=r"long\.docx: too many paragraphs; expected at most 50 paragraphs; "
                                              r"found more than 50; fix: split the document"):
        read_file(path)


@FAST
@given(chunk=st.integers(1, 64), n=st.integers(1, 40), empty=st.booleans())
def test_docx_paragraph_count_is_exact_across_chunk_boundaries(write_file, monkeypatch, chunk, n, empty):
    monkeypatch.setattr(docx_reader, "_CHUNK", chunk)
    body = (b"<w:p/>" if empty else paragraph("T: hello")) * n
    data = make_docx(body)
    monkeypatch.setattr(docx_reader, "MAX_PARAGRAPHS", n)
    docx_reader.check_archive(data, "x.docx")  # exactly at the limit: accepted
    monkeypatch.setattr(docx_reader, "MAX_PARAGRAPHS", n - 1)
    with pytest.raises(InputFormatError, match="too many paragraphs"):
        docx_reader.check_archive(data, "x.docx")


def test_docx_file_larger_than_the_limit_is_refused_before_unzipping(write_file, monkeypatch, no_python_docx):
    monkeypatch.setattr(docx_reader, "MAX_UNCOMPRESSED_BYTES", 1000)
    monkeypatch.setattr(docx_reader.zipfile, "ZipFile", None)  # never reached
    path = write_file("big.docx", os.urandom(2000))
    with pytest.raises(InputFormatError, match=r"big\.docx: file too large for a \.docx transcript"):
        read_file(path)


# --- clock times ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["99:99:99", "00:61:00", "00:00:60", "1:60", "10:00:60.5", "0:59:99,1"])
def test_parse_time_refuses_minutes_or_seconds_of_60_or_more(value):
    with pytest.raises(InputFormatError, match=r"^t\.csv:7: impossible clock time; expected minutes and seconds "
                                               r"from 00 to 59 \(hh:mm:ss\); found a minutes or seconds field"):
        parse_time(value, "t.csv", 7)


@pytest.mark.parametrize(("value", "seconds"), [("00:59:59.5", 3599.5), ("1:02:03,5", 3723.5), ("75:30", 4530),
                                                ("100:00:00", 360000), ("0:00", 0)])
def test_parse_time_keeps_valid_clock_times(value, seconds):
    assert parse_time(value, "t.csv", 1) == seconds


@FAST
@given(h=st.integers(0, 99), m=st.integers(0, 99), s=st.integers(0, 99))
def test_parse_time_clock_fields(h, m, s):
    text = f"{h:02d}:{m:02d}:{s:02d}"
    if m < 60 and s < 60:
        assert parse_time(text, "t.csv", 3) == h * 3600 + m * 60 + s
    else:
        with pytest.raises(InputFormatError) as info:
            parse_time(text, "t.csv", 3)
        assert (info.value.path, info.value.line) == ("t.csv", 3)


def test_csv_impossible_time_is_a_warning_naming_file_and_line(write_file):
    path = write_file("t.csv", "speaker,start,text\nT,00:00:05,hello\nC,00:61:00,Hi\n")
    result = read_file(path)
    [session] = result.sessions
    assert [t.start_s for t in session.turns] == [5, None]
    [problem] = [p for p in result.problems if p.code == "turns.bad_time"]
    assert (problem.level, problem.path, problem.line) == ("warning", str(path), 3)
    assert "impossible clock time" in problem.message and "time left empty" in problem.message
    assert_no_words(problem.message)


def test_csv_times_beyond_a_session_are_flagged_and_left_empty(write_file):
    path = write_file("t.csv", "session_id,speaker,start,end,text\n"
                               "a,T,0,5,hello\na,C,5,9,Hi\na,T,1e15,1e16,secret\n"
                               "b,T,1600000000000,1600000005000,hello\nb,C,1600000005000,1600000009000,Hi\n")
    result = read_file(path)
    a, b = result.sessions
    assert [(t.start_s, t.end_s) for t in a.turns] == [(0, 5), (5, 9), (None, None)]
    assert all(t.start_s is None and t.end_s is None for t in b.turns)
    flagged = [p for p in result.problems if p.code == "turns.implausible_time"]
    assert [(p.level, p.path, p.line, p.session_id) for p in flagged] == [
        ("warning", str(path), 4, "a"), ("warning", str(path), 5, "b")]  # one per session, first line
    assert "2 turn(s) with a time beyond 24 hours; times left empty" in flagged[1].message
    assert_no_words(flagged[0].message)


def test_subtitle_times_beyond_a_session_are_flagged(write_file):
    vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nT: hello\n\n30:00:00.000 --> 30:00:02.000\nC: Hi\n"
    result = read_file(write_file("t.vtt", vtt))
    [session] = result.sessions
    assert [t.start_s for t in session.turns] == [1.0, None]
    assert [(p.code, p.line) for p in result.problems if p.code == "turns.implausible_time"] == [
        ("turns.implausible_time", 6)]


def test_the_time_limit_can_be_raised(write_file, monkeypatch):
    monkeypatch.setattr(_build, "MAX_SESSION_SECONDS", 10**9)
    path = write_file("t.csv", "speaker,start,text\nT,0,hello\nC,90000,Hi\n")
    assert [t.start_s for t in read_file(path).sessions[0].turns] == [0, 90000]


# --- byte-order marks and zero-width characters -----------------------------------------------


def test_csv_concatenated_exports_with_a_bom_in_mid_file(write_file):
    one = "\ufeffsession_id,speaker,text\ns1,T,hello\ns1,C,Hi\n"
    two = "\ufeffsession_id,speaker,text\ns1,T,secret\ns2,C,Hi\n"
    result = read_file(write_file("t.csv", (one + two).encode("utf-8")))
    assert [(s.session_id, len(s.turns)) for s in result.sessions] == [("s1", 3), ("s2", 1)]
    assert [(p.code, p.line) for p in result.problems if p.level == "warning"][:1] == [("csv.repeated_header", 4)]


def test_csv_bom_at_the_start_of_a_row_makes_no_phantom_session(write_file):
    data = "session_id,speaker,text\ns1,T,hello\n\ufeffs1,C,Hi\n".encode("utf-8")
    [session] = read_file(write_file("t.csv", data)).sessions
    assert (session.session_id, len(session.turns)) == ("s1", 2)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_text_bom_in_mid_file_does_not_merge_turns(write_file, encoding):
    text = "T: hello there\nC: Hi\n" + "\ufeffT: secret plan\nC: Hi again\n"
    [session] = read_file(write_file("t.txt", text.encode(encoding))).sessions
    assert [(t.speaker_id, t.text) for t in session.turns] == [
        ("T", "hello there"), ("C", "Hi"), ("T", "secret plan"), ("C", "Hi again")]


@pytest.mark.parametrize("char", list(ZERO_WIDTH))
def test_text_zero_width_characters_in_speaker_prefixes(write_file, char):
    text = f"{char}T: hello\nC{char}: Hi there\nT{char}{char}: more\n{char}C: a\u200db\n"
    [session] = read_file(write_file("t.txt", text)).sessions
    assert [(t.speaker_role, t.speaker_id, t.text) for t in session.turns] == [
        ("therapist", "T", "hello"), ("client", "C", "Hi there"), ("therapist", "T", "more"),
        ("client", "C", "a\u200db")]  # the turn's own text keeps its characters


@FAST
@given(data=st.data())
def test_zero_width_characters_anywhere_in_a_label(write_file, data):
    labels = ["Therapist", "Client", "T12", "Counsellor"]
    lines = []
    for label in labels:
        spots = data.draw(st.lists(st.integers(0, len(label)), max_size=3))
        chars = data.draw(st.lists(st.sampled_from(ZERO_WIDTH), min_size=len(spots), max_size=len(spots)))
        for spot, char in sorted(zip(spots, chars), reverse=True):
            label = label[:spot] + char + label[spot:]
        lines.append(f"{label}: words of turn {len(lines)}")
    [session] = read_file(write_file("t.txt", "\n".join(lines) + "\n")).sessions
    assert [t.text for t in session.turns] == [f"words of turn {k}" for k in range(4)]
    assert [t.speaker_role for t in session.turns] == ["therapist", "client", "therapist", "therapist"]


def test_zero_width_characters_in_csv_speaker_cells_and_docx_prefixes(write_file):
    csv_path = write_file("t.csv", "speaker,text\n\u200bT,hello\nC\u2060,Hi\n")
    assert [t.speaker_role for t in read_file(csv_path).sessions[0].turns] == ["therapist", "client"]
    docx_path = write_file("t.docx", make_docx(paragraph("\u200bT: hello") + paragraph("C\u200c: Hi")))
    assert [t.speaker_role for t in read_file(docx_path).sessions[0].turns] == ["therapist", "client"]


# --- files that are not regular files ---------------------------------------------------------


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")


@needs_fifo
@pytest.mark.timeout(20)
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputFormatError, match=r"pipe\.csv: not a regular file; expected a transcript file; "
                                              r"found a named pipe \(FIFO\); fix: copy the transcript"):
        read_file(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        file_sha256(fifo)


@pytest.mark.timeout(20)
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_dev_zero_is_refused_without_reading(tmp_path):
    with pytest.raises(InputFormatError, match=r"^/dev/zero: not a regular file; .*found a character device"):
        read_file("/dev/zero")
    link = tmp_path / "zero.txt"
    link.symlink_to("/dev/zero")
    with pytest.raises(InputFormatError, match="not a regular file"):
        read_file(link)


@needs_fifo
@pytest.mark.timeout(20)
def test_load_paths_refuses_pipes_and_devices_and_reads_the_rest(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.csv").write_text("speaker,text\nT,hello\nC,Hi\n")
    os.mkfifo(folder / "pipe.csv")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "gone.txt").symlink_to(folder / "missing")
    os.mkfifo(tmp_path / "named.txt")
    results = load_paths([folder, tmp_path / "named.txt"])
    by_path = {r.path: r for r in results}
    assert len(by_path[str(folder / "good.csv")].sessions) == 1
    assert by_path[str(tmp_path / "named.txt")].failed  # named explicitly: a failed file
    problems = [(p.level, p.code, p.path) for r in results for p in r.problems]
    assert ("warning", "input.not_regular", str(folder / "pipe.csv")) in problems
    assert ("warning", "input.not_regular", str(folder / "zero.txt")) in problems
    assert ("warning", "input.broken_link", str(folder / "gone.txt")) in problems
    assert ("error", "input.error", str(tmp_path / "named.txt")) in problems


@needs_fifo
@pytest.mark.timeout(60)
def test_cli_inspect_fifo_argument_fails_cleanly(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["inspect", str(tmp_path / "pipe.csv")])
    assert result.exit_code == 1
    assert f"error {tmp_path / 'pipe.csv'}: not a regular file" in result.stdout
    assert "Traceback" not in result.output


# --- inputs holding no transcript -------------------------------------------------------------


def test_require_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFormatError, match=r"empty: no transcript files found under this folder; expected "
                                              r"files ending in \.csv, .*\.vtt; found none"):
        require_inputs([tmp_path / "empty"])
    with pytest.raises(InputFormatError, match=r"typo\.csv: no such file or directory; .*fix: check the path"):
        require_inputs([tmp_path / "typo.csv"])
    (tmp_path / "empty" / "a.txt").write_text("T: hello\nC: Hi\n")
    require_inputs([tmp_path / "empty", tmp_path / "typo.csv"])  # one file: the run reports the typo


@pytest.mark.timeout(120)
def test_cli_deid_check_refuses_an_empty_folder(tmp_path):
    result = CliRunner().invoke(app, ["deid-check", "--no-ner", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path}: no transcript files found under this folder")


# --- duplicate column names -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "header"), [("t.csv", "speaker,text,speaker"), ("t.tsv", "text\tspeaker\ttext")])
def test_duplicate_used_column_is_an_error(write_file, name, header):
    sep = "\t" if name.endswith(".tsv") else ","
    path = write_file(name, header + "\n" + sep.join(["T", "hello", "C"]) + "\n")
    dup = header.split(sep)[0]
    with pytest.raises(InputFormatError, match=rf"t\.\w+:1: duplicate column '{dup}' \(columns 1, 3\); expected "
                                              r"each column name once in the header row; .*fix: rename") as info:
        read_file(path)
    assert info.value.line == 1
    assert_no_words(str(info.value))


def test_duplicate_mapped_column_is_an_error(write_file):
    path = write_file("t.csv", "who,says,says\nT,hello,Hi\n")
    from pipeline.io.readers import ReadOptions
    with pytest.raises(InputFormatError, match=r"duplicate column 'says' \(columns 2, 3\)"):
        read_file(path, ReadOptions(columns={"speaker": "who", "text": "says"}))


def test_duplicate_unused_column_is_a_warning(write_file):
    long_name = "this header cell is a sentence. hello"
    path = write_file("t.csv", f"speaker,note,text,note,,,{long_name},{long_name}\nT,a,hello,b,,,x,y\nC,,Hi,,,,,\n")
    result = read_file(path)
    assert len(result.sessions[0].turns) == 2
    dups = [p for p in result.problems if p.code == "csv.duplicate_column"]
    assert [(p.level, p.line) for p in dups] == [("warning", 1), ("warning", 1)]
    assert "duplicate column name 'note' (columns 2, 4); the column is not read" in dups[0].message
    assert "'<37 characters>' (columns 7, 8)" in dups[1].message  # a long cell is described, not quoted
    assert_no_words(dups[1].message)


def test_duplicate_profile_column_is_an_error(write_file):
    header = "transcript_id,utterance_id,interlocutor,timestamp,utterance_text,utterance_text"
    path = write_file("annomi.csv", header + "\n1,0,therapist,00:00:01,hello,Hi\n")
    with pytest.raises(InputFormatError, match=r"duplicate column 'utterance_text' \(columns 5, 6\)"):
        read_file(path)
