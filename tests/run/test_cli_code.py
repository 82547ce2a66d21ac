"""`rupture-coder code`: help, option errors, the output-folder safety checks, and the exit status
of a run in which one session fails (in process with CliRunner, under the Prefect test harness)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli._app import app

SCRIPT = Path(sys.executable).parent / "rupture-coder"
WIDE = {"COLUMNS": "200"}
GOOD_CSV = (
    "session_id,turn,speaker,start,end,text\n"
    "g-1,1,T,0,6,What would you like to focus on today?\n"
    "g-1,2,C,6,12,I don't know. Whatever you think.\n"
    "g-1,3,T,12,20,It sounds hard to choose. Can we stay with that?\n"
)
PHI_CSV = (
    "session_id,turn,speaker,text\n"
    "p-1,1,T,Welcome.\n"
    "p-1,2,C,You can reach me at 555-123-4567 any time.\n"
)


@pytest.fixture
def inputs(tmp_path) -> list[Path]:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "good.csv").write_text(GOOD_CSV, encoding="utf-8")
    (folder / "phi.csv").write_text(PHI_CSV, encoding="utf-8")
    return [folder / "good.csv", folder / "phi.csv"]


def invoke(*args):
    return CliRunner().invoke(app, ["code", *map(str, args)], env=WIDE)


def assert_refused(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_code_help_lists_the_options():
    result = invoke("--help")
    assert result.exit_code == 0
    for option in ("--out", "--model", "--runner", "--workers", "--address", "--phi", "--chunk-size",
                   "--no-merge", "--cache-dir", "--overwrite"):
        assert option in result.stdout


@pytest.mark.parametrize("option, message", [
    (["--runner", "spark"], "unknown --runner 'spark'; expected auto, local, dask, inline, worker"),
    (["--phi", "maybe"], "unknown --phi mode 'maybe'; expected fail, redact, warn"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--chunk-size", "0"], "--chunk-size must be at least 1"),
    (["--format", "xls"], "unknown --format 'xls'"),
])
def test_cli_code_bad_options_exit_2_without_side_effects(inputs, tmp_path, option, message):
    result = invoke(*inputs, "--out", tmp_path / "out", *option)
    assert_refused(result, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("what", ["an empty folder", "a mistyped path", "a folder of other files"])
def test_cli_code_refuses_inputs_holding_no_transcript(tmp_path, what):
    empty = tmp_path / "empty"
    empty.mkdir()
    if what == "a folder of other files":
        (empty / "notes.pdf").write_bytes(b"%PDF")
    target = tmp_path / "inptus" if what == "a mistyped path" else empty
    result = invoke(target, "--out", tmp_path / "out")
    message = ("no such file or directory; expected a transcript file or a folder of them" if what == "a mistyped path"
               else "no transcript files found under this folder; expected files ending in .csv, .docx")
    assert_refused(result, f"{target}: {message}")
    assert not (tmp_path / "out").exists()


def test_cli_code_console_script_bad_option_has_no_traceback(inputs, tmp_path):
    for option, message in ((["--phi", "maybe"], "unknown --phi mode 'maybe'"),
                            (["--runner", "spark"], "unknown --runner 'spark'")):
        proc = subprocess.run([str(SCRIPT), "code", *map(str, inputs), "--out", str(tmp_path / "out"), *option],
                              capture_output=True, text=True, timeout=120, env={**os.environ, **WIDE})
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("error: ") and message in proc.stderr


@pytest.mark.parametrize("where", ["the input folder", "inside the input folder", "around the input"])
def test_cli_code_refuses_out_overlapping_an_input(inputs, tmp_path, where):
    folder = inputs[0].parent
    out, args = {"the input folder": (folder, [folder]),
                 "inside the input folder": (folder / "run", [folder]),
                 "around the input": (tmp_path, inputs)}[where]
    before = sorted(p for p in tmp_path.rglob("*"))
    assert_refused(invoke(*args, "--out", out), "--out overlaps an input")
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_cli_code_refuses_a_folder_that_is_not_a_run(inputs, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert_refused(invoke(*inputs, "--out", out), "--out is a non-empty folder that is not a rupture-coder run")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_cli_code_refuses_a_file_as_out(inputs, tmp_path):
    (tmp_path / "out.txt").write_text("x")
    assert_refused(invoke(*inputs, "--out", tmp_path / "out.txt"), "--out is a file")


def test_cli_code_refuses_a_run_with_another_configuration(inputs, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    config = {"model": None, "format": None, "roles": {}, "columns": {}, "phi": "warn", "merge_same_speaker": True}
    (out / "run.json").write_text(json.dumps({"config": config}))
    assert_refused(invoke(*inputs, "--out", out), "--out holds a run with a different configuration")
    assert [p.name for p in out.iterdir()] == ["run.json"]


def test_cli_code_failed_session_exits_1_and_resumes(prefect_harness, tiny_bundle, inputs, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    hashes = [sha256(p) for p in inputs]
    args = [*inputs, "--out", out, "--model", tiny_bundle]
    first = invoke(*args, "--overwrite")
    assert first.exit_code == 1, first.output
    assert re.search(r"coded this run\W+1\W", first.stdout) and re.search(r"failed sessions\W+1\W", first.stdout)
    assert "session p-1" in first.stdout and "555" not in first.stdout
    assert [json.loads(line)["session_id"] for line in (out / "sessions.jsonl").read_text().splitlines()] == ["g-1"]
    info = json.loads((out / "run.json").read_text())
    assert len(info["failures"]) == 1 and info["counts"]["sessions_failed"] == 1
    assert (out / "notes.txt").read_text() == "keep me"
    again = invoke(*args, "--chunk-size", "3")  # a run now, same configuration (chunking changes no output)
    assert again.exit_code == 1, again.output
    assert re.search(r"coded this run\W+0\W", again.stdout) and re.search(r"skipped \(unchanged\)\W+1\W", again.stdout)
    assert [p["sessions"] for p in json.loads((out / "run.json").read_text())["inputs"]] == [1, 1]
    assert_refused(invoke(*args, "--no-merge"), "--out holds a run with a different configuration")
    assert [sha256(p) for p in inputs] == hashes  # inputs never modified


def test_cli_code_unchanged_rerun_skips_prefect_and_the_model(prefect_harness, tiny_bundle, inputs, tmp_path,
                                                               monkeypatch):
    from flows import code_corpus as flow_module

    out = tmp_path / "out"
    args = [inputs[0], "--out", out, "--model", tiny_bundle, "--runner", "local"]  # one small file: Prefect on request
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts}

    def no_flow(*_args, **_kwargs):
        raise AssertionError("an unchanged re-run started the flow")

    monkeypatch.setattr(flow_module, "run_code_corpus", no_flow)
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.stdout
    assert re.search(r"coded this run\W+0\W", again.stdout) and re.search(r"skipped \(unchanged\)\W+1\W", again.stdout)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts} == before

    inputs[0].write_text(GOOD_CSV + "g-1,4,C,20,26,Fine.\n", encoding="utf-8")  # a changed input is coded again
    with pytest.raises(AssertionError, match="started the flow"):
        raise invoke(*args).exception


def test_cli_code_one_small_file_is_coded_in_process_with_the_same_outputs(prefect_harness, tiny_bundle, inputs,
                                                                           tmp_path, monkeypatch):
    """Issue #14: `--runner auto` codes one small input file without Prefect (no temporary server
    to start); the outputs are byte for byte those of a run through Prefect."""
    from flows import code_corpus as flow_module

    calls = []
    real = flow_module.run_code_corpus
    monkeypatch.setattr(flow_module, "run_code_corpus", lambda *a, **k: calls.append(1) or real(*a, **k))
    inline, flow = tmp_path / "a" / "out", tmp_path / "b" / "out"
    assert invoke(inputs[0], "--out", inline, "--model", tiny_bundle).exit_code == 0
    assert calls == []
    assert invoke(inputs[0], "--out", flow, "--model", tiny_bundle, "--runner", "local").exit_code == 0
    assert calls == [1]
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*")  # noqa: E731
                          if p.is_file() and ".cache" not in p.parts}
    assert files(inline) == files(flow)


def test_cli_code_rerun_with_little_changed_is_coded_in_process_with_the_same_outputs(prefect_harness, tiny_bundle,
                                                                                     tmp_path, monkeypatch):
    """Issue #15: a re-run of a finished corpus run in which at most INLINE_MAX_BYTES of input
    files are new or changed skips Prefect's start-up (`--runner auto`); the outputs are byte for
    byte those of a fresh run through Prefect. Other options, or more changed bytes: Prefect."""
    from dataclasses import replace

    from flows import code_corpus as flow_module
    from pipeline.cli import code as cli_code
    from pipeline.run import uptodate
    from pipeline.run.config import RunConfig

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    calls = []
    real = flow_module.run_code_corpus
    monkeypatch.setattr(flow_module, "run_code_corpus", lambda *a, **k: calls.append(1) or real(*a, **k))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("a", "b", "c"):
        (corpus / f"{name}.csv").write_text(GOOD_CSV.replace("g-1", f"{name}-1"), encoding="utf-8")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    config = RunConfig(out=str(out), model=str(tiny_bundle))
    assert uptodate.inspect([str(corpus)], config) == (None, None)  # no run there yet

    assert invoke(corpus, "--out", out, "--model", tiny_bundle).exit_code == 0
    assert calls == [1]  # a corpus: through Prefect
    changed = corpus / "b.csv"
    changed.write_text(changed.read_text(encoding="utf-8") + "b-1,4,C,20,26,Fine.\n", encoding="utf-8")
    (corpus / "d.csv").write_text(GOOD_CSV.replace("g-1", "d-1"), encoding="utf-8")  # a new file counts too
    (corpus / "a.csv").unlink()  # a removed one costs nothing
    size = changed.stat().st_size + (corpus / "d.csv").stat().st_size
    assert uptodate.inspect([str(corpus)], config) == (None, size)
    assert uptodate.inspect([str(corpus)], replace(config, png=False)) == (None, None)  # other options: unknown
    assert cli_code.choose_runner("auto", [str(corpus)], size) == "inline"
    assert cli_code.choose_runner("local", [str(corpus)], size) == "local"

    again = invoke(corpus, "--out", out, "--model", tiny_bundle)
    assert again.exit_code == 0, again.output
    assert calls == [1]  # in process
    assert re.search(r"coded this run\W+2\W", again.stdout), again.stdout
    assert invoke(corpus, "--out", fresh, "--model", tiny_bundle).exit_code == 0
    assert calls == [1, 1]
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*")  # noqa: E731
                          if p.is_file() and ".cache" not in p.parts and ".state" not in p.parts}
    assert files(out) == files(fresh)

    monkeypatch.setattr(cli_code, "INLINE_MAX_BYTES", size // 2)  # more changed than that: Prefect
    (corpus / "c.csv").write_text(GOOD_CSV.replace("g-1", "c-1") + "c-1,4,C,20,26,Fine.\n", encoding="utf-8")
    assert invoke(corpus, "--out", out, "--model", tiny_bundle).exit_code == 0
    assert calls == [1, 1, 1]


def test_cli_code_runner_auto_chooses_prefect_for_corpora(inputs, tmp_path, monkeypatch):
    from pipeline.cli import code as cli_code

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert cli_code.choose_runner("auto", [str(inputs[0])]) == "inline"
    assert cli_code.choose_runner("auto", [str(p) for p in inputs]) == "local"
    assert cli_code.choose_runner("auto", [str(inputs[0].parent)]) == "local"  # a folder of two files
    assert cli_code.choose_runner("dask", [str(inputs[0])]) == "dask"
    monkeypatch.setattr(cli_code, "INLINE_MAX_BYTES", 10)
    assert cli_code.choose_runner("auto", [str(inputs[0])]) == "local"
    monkeypatch.setattr(cli_code, "INLINE_MAX_BYTES", 10**6)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")  # a server the user runs: use it
    assert cli_code.choose_runner("auto", [str(inputs[0])]) == "local"


def test_cli_code_no_png_writes_no_images_and_is_part_of_the_configuration(prefect_harness, tiny_bundle, inputs,
                                                                           tmp_path):
    out = tmp_path / "out"
    result = invoke(inputs[0], "--out", out, "--model", tiny_bundle, "--no-png")
    assert result.exit_code == 0, result.output
    assert sorted(p.suffix for p in (out / "timelines").iterdir()) == [".csv", ".json"]
    assert json.loads((out / "run.json").read_text())["config"]["png"] is False
    assert_refused(invoke(inputs[0], "--out", out, "--model", tiny_bundle),
                   "--out holds a run with a different configuration")


def test_cli_code_speaker_corrections_are_applied_and_recorded(prefect_harness, tmp_path, tiny_bundle):
    """--speaker-corrections: the readers apply the table; an edited table re-codes the session."""
    from typer.testing import CliRunner

    from pipeline.cli._app import app

    data = tmp_path / "hlqc.csv"
    data.write_text("\ufeffcorp_vol_idx,conv_id,speaker,vol_text\n1,low_1,counsellor,how are things\n"
                    "2,low_1,client,you need to stop drinking now\n3,low_1,counsellor,fine i guess\n", encoding="utf-8")
    fixes = tmp_path / "fix.csv"
    fixes.write_text("dataset,session_id,turn_id,speaker_source,speaker_true,kind,note\n"
                     "hlqc,low_1,2,client,therapist,swap,lecture labelled client\n"
                     "hlqc,low_1,3,therapist,client,swap,reply labelled counsellor\n", encoding="utf-8")
    out = tmp_path / "run"
    args = ["code", str(data), "--out", str(out), "--model", str(tiny_bundle), "--no-png", "--speaker-corrections", str(fixes)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    turns = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert [t["speaker"] for t in turns] == ["therapist", "client"]  # turns 1-2 merged as the therapist's
    run = json.loads((out / "run.json").read_text())
    assert str(fixes.resolve()) in json.dumps(run)
    again = CliRunner().invoke(app, args)  # the same command again: same configuration, nothing to do
    assert again.exit_code == 0, again.output
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,session_id\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["code", str(data), "--out", str(tmp_path / "r2"), "--model", str(tiny_bundle),
                                      "--speaker-corrections", str(bad)])
    assert result.exit_code == 2 and "speaker corrections lack columns" in result.output
