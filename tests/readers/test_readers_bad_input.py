"""Bad input: every error names the file and line, every recoverable problem is a Problem."""

from __future__ import annotations

import json
import os
import random

import pytest

from pipeline.errors import ConfigError, InputFormatError, RuptureCoderError, SpeakerMappingError
from pipeline.io.readers import ReadOptions, load_paths, read_file

GOOD = "speaker,text\nT,Hello.\nC,Hi.\n"


def problems_of(result) -> list[tuple[str, str, int | None]]:
    return [(p.level, p.code, p.line) for p in result.problems]


# --- unreadable content ----------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n  "], ids=["empty", "whitespace"])
@pytest.mark.parametrize("name", ["t.csv", "t.txt", "t.jsonl", "t.vtt", "t.docx"])
def test_readers_empty_file(write_file, name, content):
    path = write_file(name, content)
    if name.endswith(".docx") and content:  # whitespace is not a zip archive
        with pytest.raises(InputFormatError, match=r"t\.docx: not a readable \.docx file"):
            read_file(path)
        return
    with pytest.raises(InputFormatError, match=rf"{name.replace('.', '[.]')}: file is empty") as info:
        read_file(path)
    assert info.value.path == str(path)


def test_readers_binary_file_with_nul_bytes(write_file):
    path = write_file("t.csv", b"speaker,text\x00\x01\x02\xff\x00\x00\x10\n")
    with pytest.raises(InputFormatError, match=r"t\.csv: file looks binary .*export the transcript"):
        read_file(path)


@pytest.mark.parametrize("name", ["t.csv", "t.txt", "t.jsonl", "t.srt", "t.vtt", "t.docx", "t.tsv"])
def test_readers_random_bytes(write_file, name):
    data = random.Random(7).randbytes(4096)
    with pytest.raises(InputFormatError, match=r"t\.\w+(:\d+)?: "):
        read_file(write_file(name, data))


def test_readers_truncated_csv_unterminated_quote(write_file):
    path = write_file("t.csv", 'speaker,text\nT,Hello.\nC,"Hi, and then the file\nstops here')
    with pytest.raises(InputFormatError, match=r"t\.csv:3: malformed CSV .*unbalanced quotes") as info:
        read_file(path)
    assert info.value.line == 3  # the line where the broken row starts


def test_readers_missing_columns_named_with_columns_hint(write_file):
    path = write_file("t.csv", "who,utterance\nT,Hello.\n")
    with pytest.raises(InputFormatError, match=r"t\.csv:1: missing column\(s\) speaker, text;.*found columns who, "
                                              r"utterance;.*--columns") as info:
        read_file(path)
    assert info.value.line == 1


def test_readers_unparseable_json_line_number(write_file):
    text = '{"speaker": "T", "text": "a"}\n\n{"speaker": "C", "text": "b"\n'
    with pytest.raises(InputFormatError, match=r"t\.jsonl:3: invalid JSON; expected one JSON object per line"):
        read_file(write_file("t.jsonl", text))


@pytest.mark.parametrize("line", ['["T", "a"]', '"just a string"', "42", "null"])
def test_readers_json_line_not_an_object(write_file, line):
    text = '{"speaker": "T", "text": "a"}\n' + line + "\n"
    with pytest.raises(InputFormatError, match=r"t\.jsonl:2: JSON line is not an object"):
        read_file(write_file("t.jsonl", text))


def test_readers_deeply_nested_json(write_file):
    text = '{"speaker": "T", "text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    with pytest.raises(InputFormatError, match=r"t\.jsonl:1: JSON nested too deeply"):
        read_file(write_file("t.jsonl", text))


def test_readers_json_line_lacks_fields(write_file):
    with pytest.raises(InputFormatError,
                       match=r"t\.jsonl:1: JSON line lacks required fields; .*missing text.*--columns"):
        read_file(write_file("t.jsonl", '{"speaker": "T", "utterance": "a"}\n'))


# --- speakers ----------------------------------------------------------------------------------


def test_readers_unmapped_speakers_all_named(write_file):
    path = write_file("t.csv", "speaker,text\nT,a\nZed,b\nYves,c\nZed,d\n")
    with pytest.raises(SpeakerMappingError, match=r"t\.csv: .*'Zed' \(first at line 3\), 'Yves' \(first at line 4\)"
                                                 r"; fix: .*--roles \"Zed=client,Yves=client\"") as info:
        read_file(path)
    assert isinstance(info.value, InputFormatError)


def test_readers_roles_option_with_unknown_role(write_file):
    with pytest.raises(ConfigError, match=r"unknown role\(s\) 'patient'"):
        read_file(write_file("t.csv", GOOD), ReadOptions(roles={"C": "patient"}))


def test_readers_session_with_one_speaker_warns(write_file):
    result = read_file(write_file("t.csv", "speaker,text\nT,a\nT,b\n"))
    assert problems_of(result) == [("warning", "session.one_speaker", 2)]
    assert len(result.sessions[0].turns) == 2


# --- turn ids, times, labels -------------------------------------------------------------------


def test_readers_duplicate_turn_ids_fail_only_that_session(write_file):
    text = ("session_id,turn,speaker,text\n"
            "a,1,T,x\na,2,C,y\nb,1,T,x\nb,1,C,y\nb,2,T,z\nc,1,T,x\nc,2,C,y\n")
    path = write_file("t.csv", text)
    result = read_file(path)
    assert [s.session_id for s in result.sessions] == ["a", "c"]
    [problem] = result.problems
    assert (problem.level, problem.code, problem.path, problem.line, problem.session_id) == (
        "error", "session.invalid", str(path), 4, "b")
    assert "duplicate turn id(s) '1'" in problem.message
    assert problem.render().startswith(f"{path}:4 (session b): duplicate")
    assert not result.failed


def test_readers_non_monotonic_turn_ids_warn_and_sort(write_file):
    path = write_file("t.csv", "turn,speaker,text\n1,T,one\n3,T,three\n2,C,two\n4,C,four\n")
    result = read_file(path)
    assert problems_of(result) == [("warning", "turns.out_of_order", 4)]
    assert [t.text for t in result.sessions[0].turns] == ["one", "two", "three", "four"]
    assert [t.index for t in result.sessions[0].turns] == [0, 1, 2, 3]


def test_readers_nan_turn_id_does_not_sort(write_file):
    result = read_file(write_file("t.csv", "turn,speaker,text\n2,T,a\nnan,C,b\n1,T,c\n"))
    assert [t.text for t in result.sessions[0].turns] == ["a", "b", "c"]


def test_readers_non_monotonic_timestamps_warn(write_file):
    path = write_file("t.csv", "speaker,text,start,end\nT,a,10,12\nC,b,5,6\nT,c,13,11\n")
    result = read_file(path)
    assert problems_of(result) == [("warning", "turns.non_monotonic_time", 3),
                                   ("warning", "turns.end_before_start", 4)]


@pytest.mark.parametrize("cell", ["soon", "12:99:99:99", "-3", "inf", "1e999"])
def test_readers_bad_time_cell_warns_and_leaves_time_empty(write_file, cell):
    path = write_file("t.csv", f"speaker,text,start\nT,a,1.0\nC,b,{cell}\n")
    result = read_file(path)
    assert problems_of(result) == [("warning", "turns.bad_time", 3)]
    assert [t.start_s for t in result.sessions[0].turns] == [1.0, None]
    assert "time left empty" in result.problems[0].message
    assert cell not in result.problems[0].message.replace("turns", "")


def test_readers_bad_time_json_values_warn(write_file):
    text = "\n".join(json.dumps({"speaker": s, "text": "x", "start": v})
                     for s, v in [("T", True), ("C", -1), ("T", {"s": 1}), ("C", 2)]) + "\n"
    result = read_file(write_file("t.jsonl", text))
    assert problems_of(result) == [("warning", "turns.bad_time", n) for n in (1, 2, 3)]
    assert [t.start_s for t in result.sessions[0].turns] == [None, None, None, 2.0]


def test_readers_invalid_label_code_fails_the_session(write_file):
    text = ("session_id,speaker,text,rupture,repair\n"
            "a,C,x,withdrawl,\na,T,y,,\nb,C,x,withdrawal,\nb,T,y,,repair\nc,C,x,,repair\nc,T,y,,\n")
    result = read_file(write_file("t.csv", text))
    assert [s.session_id for s in result.sessions] == ["b"]
    by_session = {p.session_id: p for p in result.problems}
    assert (by_session["a"].code, by_session["a"].line) == ("session.invalid", 2)
    assert "invalid rupture code(s) 'withdrawl'" in by_session["a"].message
    assert (by_session["c"].line, "repair label on a client turn" in by_session["c"].message) == (6, True)


def test_readers_field_count_mismatch_warns(write_file):
    result = read_file(write_file("t.csv", "speaker,text\nT,a,extra\nC\n"))
    assert problems_of(result) == [("warning", "csv.field_count", 2), ("warning", "csv.field_count", 3),
                                   ("warning", "turns.empty", 3), ("warning", "session.one_speaker", 2)]


def test_readers_empty_speaker_cell(write_file):
    with pytest.raises(InputFormatError, match=r"t\.csv:3: empty speaker cell"):
        read_file(write_file("t.csv", "speaker,text\nT,a\n,b\n"))


def test_readers_text_without_speakers(write_file):
    with pytest.raises(InputFormatError, match=r"notes\.txt: no turns found; expected at least one turn in text"):
        read_file(write_file("notes.txt", "Just some notes.\nNo speakers here.\n"))


def test_readers_subtitles_without_speakers(write_file):
    text = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhello\n"
    with pytest.raises(InputFormatError, match=r"t\.vtt: no speaker-labelled cues"):
        read_file(write_file("t.vtt", text))


def test_readers_malformed_subtitles(write_file):
    with pytest.raises(InputFormatError, match=r"t\.vtt: malformed WebVTT file; .*WEBVTT header"):
        read_file(write_file("t.vtt", "T: hi\nC: hello\n"), ReadOptions(fmt="vtt"))
    with pytest.raises(InputFormatError, match=r"t\.srt: malformed SRT file"):
        read_file(write_file("t.srt", "1\n00:00:01,000 --> 00:00:02,000\nT: hi\n\nx\n00:00:0x --> ?\nC: a\n"))


def test_readers_vtt_cue_with_unreadable_timing_warns(write_file):
    text = ("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nT: hi\n\n00:00:0x.000 --> 00:00:03.000\nC: lost\n\n"
            "00:00:04.000 --> 00:00:05.000\nC: fine\n")
    result = read_file(write_file("t.vtt", text))
    assert [t.text for t in result.sessions[0].turns] == ["hi", "fine"]
    assert [t.source.lines for t in result.sessions[0].turns] == [(3,), (9,)]
    assert problems_of(result) == [("warning", "subtitles.skipped_cues", 6)]


def test_readers_zip_that_is_not_a_docx(write_file, tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "t.docx", "w") as archive:
        archive.writestr("[Content_Types].xml", "<not xml")
    with pytest.raises(InputFormatError, match=r"t\.docx: not a readable \.docx file; .*found XMLSyntaxError"):
        read_file(tmp_path / "t.docx")


def test_readers_unknown_format_option(write_file):
    with pytest.raises(InputFormatError, match=r"t\.csv: unknown format 'xls'; expected one of csv, tsv"):
        read_file(write_file("t.csv", GOOD), ReadOptions(fmt="xls"))


# --- paths ---------------------------------------------------------------------------------------


def test_readers_load_paths_one_bad_file_among_good(tmp_path, write_file):
    write_file("dir/a.csv", GOOD)
    write_file("dir/sub/b.txt", "T: hi\nC: hello\n")
    bad = write_file("dir/c.csv", "who,utterance\nT,a\n")
    write_file("dir/README.md", "not a transcript")
    write_file("dir/.hidden.csv", "garbage")
    results = load_paths([tmp_path / "dir"])
    assert [os.path.basename(r.path) for r in results] == ["a.csv", "c.csv", "b.txt"]
    assert [len(r.sessions) for r in results] == [1, 0, 1]
    failed = [r for r in results if r.failed]
    assert [r.path for r in failed] == [str(bad)]
    [problem] = failed[0].problems
    assert (problem.level, problem.code, problem.path, problem.line) == ("error", "input.error", str(bad), 1)
    assert problem.message.startswith("missing column(s) speaker, text")


def test_readers_missing_path(tmp_path, write_file):
    good = write_file("a.csv", GOOD)
    results = load_paths([tmp_path / "nope.csv", good])
    assert [(p.level, p.code, p.path) for r in results for p in r.problems] == [
        ("error", "input.missing", str(tmp_path / "nope.csv"))]
    assert [r.failed for r in results] == [True, False]
    with pytest.raises(InputFormatError, match=r"nope\.csv: file not found; fix: check the path"):
        read_file(tmp_path / "nope.csv")


def test_readers_directory_given_as_file(tmp_path):
    with pytest.raises(InputFormatError, match=r"is a directory, not a file"):
        read_file(tmp_path)


def test_readers_unreadable_file(write_file):
    path = write_file("locked.csv", GOOD)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user who can read mode-000 files (root)")
        with pytest.raises(InputFormatError, match=r"locked\.csv: cannot read file \(permission denied\)"):
            read_file(path)
        [result] = load_paths([path])
        assert result.failed and result.problems[0].path == str(path)
    finally:
        path.chmod(0o644)


def test_readers_symlink_loops_in_directory(tmp_path, write_file):
    write_file("dir/a.csv", GOOD)
    (tmp_path / "dir" / "up").symlink_to(tmp_path / "dir", target_is_directory=True)
    (tmp_path / "dir" / "self.csv").symlink_to(tmp_path / "dir" / "self.csv")
    results = load_paths([tmp_path / "dir"])
    loaded = [r for r in results if r.sessions]
    assert [os.path.basename(r.path) for r in loaded] == ["a.csv"]
    codes = sorted(p.code for r in results for p in r.problems)
    assert codes == ["input.broken_link", "input.symlink_loop"]
    assert not any(r.failed for r in results)


def test_readers_symlink_loop_named_directly(tmp_path):
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    [result] = load_paths([loop])
    assert result.failed
    with pytest.raises(InputFormatError, match=r"loop\.csv: cannot read file"):
        read_file(loop)


def test_readers_paths_with_spaces_and_unicode(tmp_path, write_file):
    path = write_file("Séance 1 – Zoë/transcript 01 ü.csv", GOOD)
    [result] = load_paths([tmp_path / "Séance 1 – Zoë"])
    assert result.path == str(path)
    assert result.sessions[0].session_id == "transcript 01 ü"
    with pytest.raises(InputFormatError, match="Séance 1 – Zoë/bad ü.txt: no turns found"):
        read_file(write_file("Séance 1 – Zoë/bad ü.txt", "nothing to see\n"))


def test_readers_errors_are_rupture_coder_errors_with_location(write_file):
    path = write_file("t.jsonl", '{"speaker": "T", "text": "a"}\n{oops}\n')
    with pytest.raises(RuptureCoderError, match=r"t\.jsonl:2: invalid JSON") as info:
        read_file(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.path, err.line) == (str(path), 2)
    assert "Traceback" not in str(err) and "\n" not in str(err)


@pytest.mark.parametrize("cue", ["Then Sarah Jenkins said: go away", "My neighbour Dave Smith: he came by"])
def test_readers_bad_input_speech_taken_for_a_label_is_not_echoed(write_file, cue):
    """Issue 16, item 6: a line of speech with a colon, taken for a speaker label, must not put
    the transcript's words (here names) into the error message."""
    from pipeline.io.readers import read_file

    path = write_file("t.vtt", "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nTherapist: How are you?\n\n"
                               f"00:00:03.000 --> 00:00:04.000\n{cue}\n")
    with pytest.raises(RuptureCoderError) as info:
        read_file(path)
    text = str(info.value)
    assert "cannot be mapped" in text and "line 6" in text and "words" in text
    for word in cue.split(":")[0].split():
        assert word not in text.replace(str(path), "")
