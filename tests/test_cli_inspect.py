"""`rupture-coder inspect` (and --help everywhere), in process with CliRunner and as a real
console script in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from pipeline.cli._app import app

SCRIPT = Path(sys.executable).parent / "rupture-coder"
WIDE = {"COLUMNS": "200"}  # rich folds table cells to the terminal width (80 when not a terminal)
SUBCOMMANDS = sorted(typer.main.get_command(app).commands)
BAD_OPTIONS = [
    (["--format", "xls"], r"^error: unknown --format 'xls'; expected csv, tsv, .*; fix: leave --format out"),
    (["--roles", "S"], r"^error: bad --roles item 'S'; expected LABEL=ROLE pairs"),
    (["--roles", "S=patient"], r"^error: bad --roles item 'S=patient'; .*ROLE one of therapist, client, other"),
    (["--columns", "text"], r"^error: bad --columns item 'text'; expected FIELD=COLUMN pairs"),
    (["--columns", "txt=utterance"], r"^error: bad --columns item 'txt=utterance'; .*FIELD one of session_id"),
]


@pytest.fixture
def transcripts(write_file):
    """A CSV with two sessions and a text file; returns their paths."""
    csv_path = write_file("couple.csv", "session_id,speaker,text,start\n"
                                        "s1,T,Hello.,0\ns1,C,Hi.,60\ns1,T,(pause) So.,120\n"
                                        "s2,T,Welcome.,0\ns2,C,Thanks.,5\n")
    text_path = write_file("notes.txt", "Title line\nT: Hello.\nC: Hi.\nC: More.\n")
    return csv_path, text_path


def run_script(*args: str, module: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.cli"] if module else [str(SCRIPT)]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **WIDE})


def assert_clean_error(exit_code: int, stderr: str, pattern: str) -> None:
    assert exit_code == 2
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert re.search(pattern, stderr.strip()), stderr


# --- in process ------------------------------------------------------------------------------


def test_cli_inspect_table_in_a_narrow_terminal(transcripts):
    result = CliRunner().invoke(app, ["inspect", *map(str, transcripts)])
    assert result.exit_code == 0, result.output
    assert "3 session(s), 7 turn(s); 1 warning(s), 0 failed file(s)" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_cli_inspect_table(transcripts):
    result = CliRunner(env=WIDE).invoke(app, ["inspect", *map(str, transcripts)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for cell in ("couple.csv", "notes.txt", "s1", "s2", "csv", "text", "2.0 min"):
        assert cell in out
    assert "3 session(s), 7 turn(s); 1 warning(s), 0 failed file(s)" in out
    assert "warning" in out and "text.preamble_skipped" not in out  # rendered message, not the code


def test_cli_inspect_json(transcripts):
    result = CliRunner().invoke(app, ["inspect", "--json", *map(str, transcripts)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = {(Path(r["file"]).name, r["session_id"]): r for r in payload["sessions"]}
    assert set(rows) == {("couple.csv", "s1"), ("couple.csv", "s2"), ("notes.txt", "notes")}
    s1 = rows[("couple.csv", "s1")]
    assert (s1["format"], s1["input_turns"], s1["turns"], s1["duration_s"]) == ("csv", 3, 3, 120.0)
    notes = rows[("notes.txt", "notes")]
    assert (notes["input_turns"], notes["turns"], notes["client_turns"], notes["warnings"]) == (3, 2, 1, 1)
    [problem] = payload["problems"]
    assert (problem["level"], problem["code"], problem["line"]) == ("warning", "text.preamble_skipped", 1)
    assert problem["path"] == str(transcripts[1])
    assert payload["failed_files"] == []


def test_cli_inspect_exit_1_when_a_file_failed(transcripts, write_file):
    bad = write_file("bad.csv", "who,utterance\nT,hi\n")
    result = CliRunner(env=WIDE).invoke(app, ["inspect", str(transcripts[0]), str(bad)])
    assert result.exit_code == 1
    assert "s1" in result.stdout and "1 failed file(s)" in result.stdout
    assert f"error {bad}:1: missing column(s) speaker, text" in result.stdout
    as_json = CliRunner().invoke(app, ["inspect", "--json", str(transcripts[0]), str(bad)])
    assert as_json.exit_code == 1
    payload = json.loads(as_json.stdout)
    assert payload["failed_files"] == [str(bad)]
    assert [(p["code"], p["path"], p["line"]) for p in payload["problems"]] == [("input.error", str(bad), 1)]
    assert len(payload["sessions"]) == 2


def test_cli_inspect_format_roles_and_columns_options(write_file):
    looks = write_file("looks.csv", "Dr Lee: Hello.\nSam: Hi.\n")
    result = CliRunner().invoke(app, ["inspect", "--json", "--format", "text", "--roles", "Sam=client", str(looks)])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["sessions"]
    assert (row["format"], row["therapist_turns"], row["client_turns"]) == ("text", 1, 1)
    renamed = write_file("renamed.csv", "who,says\nT,Hello.\nC,Hi.\n")
    result = CliRunner().invoke(app, ["inspect", "--json", "--columns", "speaker=who, text=says", str(renamed)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sessions"][0]["turns"] == 2


@pytest.mark.parametrize(("options", "pattern"), BAD_OPTIONS, ids=[" ".join(o) for o, _ in BAD_OPTIONS])
def test_cli_inspect_bad_option_exit_2(transcripts, options, pattern):
    result = CliRunner().invoke(app, ["inspect", str(transcripts[0]), *options])
    assert result.stdout == ""
    assert_clean_error(result.exit_code, result.stderr, pattern)


def test_cli_inspect_missing_path_fails_cleanly(tmp_path, transcripts):
    """A mistyped path alone is a usage error (exit 2, nothing read); beside a good file it is
    that run's failed file (exit 1, the good file still shown)."""
    result = CliRunner(env=WIDE).invoke(app, ["inspect", str(tmp_path / "nope.csv")])
    assert result.stdout == ""
    assert_clean_error(result.exit_code, result.stderr,
                       rf"^error: {re.escape(str(tmp_path / 'nope.csv'))}: no such file or directory; "
                       r"expected a transcript file or a folder of them; fix: check the path")
    result = CliRunner(env=WIDE).invoke(app, ["inspect", str(transcripts[0]), str(tmp_path / "nope.csv")])
    assert result.exit_code == 1
    assert f"error {tmp_path / 'nope.csv'}: no such file or directory" in result.stdout
    assert "2 session(s)" in result.stdout


def test_cli_inspect_empty_folder_exit_2(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.pdf").write_bytes(b"%PDF")  # not a transcript extension
    (folder / ".hidden.csv").write_text("speaker,text\nT,a\n")
    result = CliRunner(env=WIDE).invoke(app, ["inspect", str(folder)])
    assert_clean_error(result.exit_code, result.stderr,
                       rf"^error: {re.escape(str(folder))}: no transcript files found under this folder; "
                       r"expected files ending in \.csv, \.docx, .*; fix: check the folder")
    result = CliRunner(env=WIDE).invoke(app, ["inspect", str(folder), str(tmp_path / "typo")])
    assert_clean_error(result.exit_code, result.stderr,
                       r"^error: no transcript files found in the 2 inputs; .*: no transcript files in it; "
                       r".*typo: no such file or directory")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_cli_help_on_every_subcommand(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout and command in result.stdout


def test_cli_help_lists_subcommands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert all(command in result.stdout for command in SUBCOMMANDS)


# --- as a console script ---------------------------------------------------------------------

needs_script = pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed next to python")


@needs_script
def test_cli_inspect_script_table_and_json(transcripts):
    table = run_script("inspect", *transcripts)
    assert table.returncode == 0, table.stderr
    assert "3 session(s), 7 turn(s)" in table.stdout and "couple.csv" in table.stdout
    as_json = run_script("inspect", "--json", *transcripts)
    assert as_json.returncode == 0
    assert len(json.loads(as_json.stdout)["sessions"]) == 3


@needs_script
def test_cli_inspect_script_exit_1_when_a_file_failed(transcripts, write_file):
    bad = write_file("bad.jsonl", '{"speaker": "T", "text": "a"}\n{broken\n')
    result = run_script("inspect", "--json", transcripts[0], bad)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    payload = json.loads(result.stdout)
    assert payload["failed_files"] == [str(bad)] and len(payload["sessions"]) == 2
    assert [(p["path"], p["line"]) for p in payload["problems"]] == [(str(bad), 2)]


@needs_script
@pytest.mark.parametrize(("options", "pattern"), BAD_OPTIONS[::2], ids=[" ".join(o) for o, _ in BAD_OPTIONS[::2]])
def test_cli_inspect_script_bad_option_exit_2(transcripts, options, pattern):
    result = run_script("inspect", transcripts[0], *options)
    assert result.stdout == ""
    assert_clean_error(result.returncode, result.stderr, pattern)


@needs_script
def test_cli_inspect_script_usage_error_exit_2(transcripts):
    result = run_script("inspect")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Missing argument" in result.stderr


@needs_script
def test_cli_script_help_on_every_subcommand():
    with ThreadPoolExecutor(max_workers=4) as pool:  # one process each, run side by side
        results = dict(zip(SUBCOMMANDS, pool.map(lambda c: run_script(c, "--help"), SUBCOMMANDS)))
    for command, result in results.items():
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage:" in result.stdout and "Traceback" not in result.stderr


def test_cli_module_entry_point(transcripts):
    result = run_script("inspect", "--columns", "text", transcripts[0], module=True)
    assert_clean_error(result.returncode, result.stderr, BAD_OPTIONS[3][1])
    helped = run_script("--help", module=True)  # lists the commands other modules register too
    assert helped.returncode == 0, helped.stderr
    assert all(command in helped.stdout for command in SUBCOMMANDS)
