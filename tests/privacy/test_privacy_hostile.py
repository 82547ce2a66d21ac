"""Hostile input and hostile conditions (extending tests/readers/test_readers_bad_input.py and
test_readers_fuzz.py): huge turns and sessions, deep JSON, NUL bytes and mixed encodings, odd
paths, symlink loops, unreadable and unwritable places, a full disk and Ctrl-C. Each ends in a
clear message and a consistent output folder."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from canaries import SCRIPT, FullDisk
from typer.testing import CliRunner

from pipeline.run import finish as assemble
from pipeline.preprocess import deid
from pipeline.io import files as outputs
from pipeline.cli._app import app
from pipeline.preprocess.deid import NER_MAX_CHARS, DeidConfig, _ner_pieces, scan_texts
from pipeline.io.turn_table import TurnTableWriter
from pipeline.io.readers import read_file
from pipeline.preprocess.segment import SegmentConfig, segment_session

WIDE = {"COLUMNS": "200"}
SENTENCE = "And I just felt that nobody at work was listening to me at all. "
TEMP = re.compile(r"^\..+\.tmp$|^\.turns_dataset\.")


def invoke(*args):
    return CliRunner(env=WIDE).invoke(app, [*map(str, args)])


def temp_files(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if TEMP.match(p.name)]


# --- huge turns, huge sessions ---------------------------------------------------------------

def test_privacy_hostile_csv_turn_longer_than_the_csv_field_limit(write_file):
    long_turn = (SENTENCE * (300_000 // len(SENTENCE) + 1))[:300_000]  # csv's default limit is 128 KiB
    result = read_file(write_file("long.csv", f'speaker,text\nT,So.\nC,"{long_turn}"\n'))
    assert [len(t.text) for t in result.sessions[0].turns] == [3, 300_000] and result.problems == []


def test_privacy_hostile_ner_pieces_cover_the_text_and_cut_after_sentences():
    text = (SENTENCE * 40)[:-1] + "\n" + "x" * 900
    pieces = _ner_pieces(text, size=500)
    assert "".join(piece for _, piece in pieces) == text
    assert all(len(piece) <= 500 for _, piece in pieces)
    assert [offset for offset, _ in pieces] == [sum(len(p) for _, p in pieces[:i]) for i in range(len(pieces))]
    assert all(piece.endswith(". ") or piece.endswith("\n") for _, piece in pieces[:-2])  # sentence ends first
    assert _ner_pieces("short", size=500) == [(0, "short")]


class _LengthLimitedNER:
    """Behaves like spaCy on long texts: refuses more than ``max_length`` characters (E088);
    finds a PERSON at every 'Whitby'."""

    meta = {"version": "0.0"}
    max_length = NER_MAX_CHARS + 1

    def pipe(self, texts, batch_size=256):
        for text in texts:
            if len(text) > self.max_length:
                raise ValueError("[E088] Text of length exceeds maximum")
            ents = [SimpleNamespace(label_="GPE", start_char=m.start(), end_char=m.end())
                    for m in re.finditer("Whitby", text)]
            yield SimpleNamespace(text=text, ents=ents)


def test_privacy_hostile_gate_scans_a_turn_longer_than_the_ner_limit(monkeypatch):
    monkeypatch.setattr(deid, "_load_ner", lambda: _LengthLimitedNER())
    filler = SENTENCE * ((3 * NER_MAX_CHARS) // len(SENTENCE))
    text = f"We went to Whitby. {filler}Then Whitby again. {filler}"
    [found] = scan_texts([text], DeidConfig())
    assert [(text[c.start:c.end], c.kind) for c in found] == [("Whitby", "place")] * 2
    assert found[1].start == text.index("Whitby again")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["huge.csv", "huge.jsonl", "huge.txt"])
def test_privacy_hostile_one_megabyte_turn(tmp_path, tiny_bundle, name):
    from pipeline.modeling.bundle import load_bundle
    from pipeline.coding.apply import code_sessions, session_timeline

    huge = (SENTENCE * (1_000_000 // len(SENTENCE) + 1))[:999_999] + "."  # no trailing space to strip
    path = tmp_path / name
    path.write_text({"huge.csv": f'speaker,text\nT,So.\nC,"{huge}"\nT,Okay.\n',
                     "huge.jsonl": "".join(json.dumps({"speaker": s, "text": t}) + "\n"
                                           for s, t in (("T", "So."), ("C", huge), ("T", "Okay."))),
                     "huge.txt": f"T: So.\nC: {huge}\nT: Okay.\n"}[name], encoding="utf-8")
    start = time.perf_counter()
    session = read_file(path).sessions[0]
    assert [len(t.text) for t in session.turns] == [3, 1_000_000, 5]
    assert deid.scan_session(session, DeidConfig(ner=False)) == []
    segmented = segment_session(session, SegmentConfig())
    assert len(segmented.turns[1].utterances) > 10_000
    coded = code_sessions([segmented], load_bundle(tiny_bundle))[0]
    assert session_timeline(coded)["segments"]
    assert time.perf_counter() - start < 120


@pytest.mark.slow
def test_privacy_hostile_hundred_thousand_turn_session(tmp_path, tiny_bundle):
    from pipeline.modeling.bundle import load_bundle
    from pipeline.coding.apply import code_sessions, session_timeline, turn_records

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["turn", "speaker", "start", "end", "text"])
    for i in range(100_000):
        writer.writerow([i + 1, "C" if i % 2 else "T", i * 0.8, i * 0.8 + 0.7,  # 22 h: within the readers' 24 h
                         "Mm, I see what you mean." if i % 2 else "And how did that feel?"])
    path = tmp_path / "long session.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    start = time.perf_counter()
    result = read_file(path)
    assert result.problems == [] and len(result.sessions[0].turns) == 100_000
    segmented = segment_session(result.sessions[0], SegmentConfig())
    coded = code_sessions([segmented], load_bundle(tiny_bundle))[0]
    timeline = session_timeline(coded)
    assert len(turn_records(coded)) == 100_000 and len(timeline["segments"]) > 100
    assert time.perf_counter() - start < 120


# --- odd bytes ----------------------------------------------------------------------------------

def test_privacy_hostile_mixed_encodings_keep_the_utf8_parts(write_file):
    data = "T: Zoë said “hi”.\n".encode() + "C: Café — naïve.\n".encode("cp1252") + "T: Ça va?\n".encode()
    result = read_file(write_file("mixed.txt", data))
    assert [t.text for t in result.sessions[0].turns] == ["Zoë said “hi”.", "Café — naïve.", "Ça va?"]
    assert [(p.code, p.line) for p in result.problems] == [("encoding.cp1252", 2)]


def test_privacy_hostile_stray_nul_byte_fails_only_its_file(write_file, tmp_path):
    write_file("in/good.csv", "speaker,text\nT,Hello.\nC,Hi.\n")
    write_file("in/nul.csv", b"speaker,text\nT,Hel\x00lo.\nC,Hi.\n")
    result = invoke("inspect", tmp_path / "in")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "1 session(s), 2 turn(s); 0 warning(s), 1 failed file(s)" in result.stdout
    assert re.search(r"nul\.csv: file looks binary \(contains NUL bytes\).*export the transcript", " ".join(result.stdout.split()))


@pytest.mark.parametrize("command", [["inspect"], ["deid-check", "--no-ner"]])
def test_privacy_hostile_deeply_nested_json_anywhere_in_a_line(write_file, tmp_path, command):
    write_file("in/deep meta.jsonl", '{"speaker": "T", "text": "a", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    write_file("in/deep object.jsonl", '{"speaker": "T", "text": "a"}\n{"speaker": "C", "text": "b", "x": '
               + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}\n")
    write_file("in/fine.jsonl", '{"speaker": "T", "text": "a"}\n{"speaker": "C", "text": "b"}\n')
    result = invoke(*command, tmp_path / "in")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(r"deep meta\.jsonl:1: JSON nested too deeply", result.stdout)
    assert re.search(r"deep object\.jsonl:2: JSON nested too deeply", result.stdout)
    assert "2 failed file(s)" in result.stdout


# --- paths ----------------------------------------------------------------------------------------

def test_privacy_hostile_symlink_loops_through_the_cli(write_file, tmp_path):
    write_file("dir/a.csv", "speaker,text\nT,Hello.\nC,Hi.\n")
    (tmp_path / "dir" / "up").symlink_to(tmp_path / "dir", target_is_directory=True)
    (tmp_path / "dir" / "self.csv").symlink_to(tmp_path / "dir" / "self.csv")
    for command in (["inspect"], ["deid-check", "--no-ner"]):
        result = invoke(*command, tmp_path / "dir")
        assert result.exit_code == 0, result.output
        assert "1 session(s)" in result.stdout or "of 1 session(s)" in result.stdout


def test_privacy_hostile_out_through_a_symlink_into_the_inputs_is_refused(write_file, tmp_path):
    write_file("in/a.csv", "speaker,text\nT,Hello.\nC,Hi.\n")
    (tmp_path / "link").symlink_to(tmp_path / "in", target_is_directory=True)
    for out in (tmp_path / "link", tmp_path / "link" / "run"):
        result = invoke("code", tmp_path / "in", "--out", out)
        assert result.exit_code == 2 and "--out overlaps an input" in result.stderr
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["a.csv"]


def test_privacy_hostile_unwritable_output_location_is_a_clean_error(write_file):
    path = write_file("a.csv", "speaker,text\nT,Hello.\nC,Hi.\n")
    result = invoke("code", path, "--out", "/proc/rupture-coder-out")
    assert result.exit_code == 2, result.output
    assert re.match(r"error: /proc/rupture-coder-out: could not read or write a file; found ", result.stderr)
    assert "Traceback" not in result.output


def test_privacy_hostile_unreadable_file_through_the_cli(write_file, tmp_path):
    write_file("in/good.csv", "speaker,text\nT,Hello.\nC,Hi.\n")
    locked = write_file("in/locked.csv", "speaker,text\nT,Hello.\nC,Hi.\n")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user who can read mode-000 files (root)")
        result = invoke("deid-check", "--no-ner", tmp_path / "in")
        assert result.exit_code == 1 and "locked.csv: cannot read file (permission denied)" in result.stdout
    finally:
        locked.chmod(0o644)


# --- a full disk --------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [0, 10])
def test_privacy_hostile_full_disk_atomic_write_keeps_the_old_file(tmp_path, monkeypatch, budget):
    target = tmp_path / "run.json"
    target.write_text("old\n")
    monkeypatch.setattr(outputs, "os", FullDisk(budget))
    with pytest.raises(OSError) as info:
        outputs.write_json(target, {"new": "x" * 100})
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old\n" and temp_files(tmp_path) == []


def test_privacy_hostile_full_disk_streamed_output_leaves_no_temp_file(tmp_path, monkeypatch):
    (tmp_path / "turns.jsonl").write_text("old\n")
    monkeypatch.setattr(outputs, "os", FullDisk(50))
    writer = outputs.AtomicFile(tmp_path / "turns.jsonl")
    with pytest.raises(OSError):
        for _ in range(10):
            writer.write("x" * 10 + "\n")
    writer.abort()
    assert temp_files(tmp_path) == [] and (tmp_path / "turns.jsonl").read_text() == "old\n"


def test_privacy_hostile_full_disk_in_finish_run_leaves_no_temp_file(tmp_path, monkeypatch):
    from pipeline.run.steps import RunConfig, RunPlan

    record = {"session_id": "s", "turn": 0, "source_turns": [], "markers": [], "strategies": [], "text": "x" * 500}
    (tmp_path / ".state").mkdir()
    (tmp_path / ".state" / "s.json").write_text(json.dumps({"fingerprint": "f"}) + "\n"
                                                  + json.dumps({"turns": [record], "session": {}}) + "\n")
    monkeypatch.setattr(outputs, "os", FullDisk(100))
    with pytest.raises(OSError):
        assemble.finish_run(tmp_path, RunPlan(order=[("s", "f")]), RunConfig(out=str(tmp_path)), [])
    assert temp_files(tmp_path) == [] and not (tmp_path / "turns.jsonl").exists()


def test_privacy_hostile_full_disk_dataset_leaves_no_temp_folder(tmp_path, monkeypatch):
    import datasets

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", full)
    writer = TurnTableWriter(tmp_path / "turns.parquet", tmp_path / "turns_dataset")
    with pytest.raises(OSError):
        writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["turns.parquet"]  # swapped in before the dataset


def test_privacy_hostile_run_that_coded_nothing_writes_an_empty_dataset(tmp_path):
    """Every session failed (e.g. --phi fail on a corpus full of identifiers): still a dataset."""
    import datasets

    TurnTableWriter(None, tmp_path / "turns_dataset").close()
    loaded = datasets.load_from_disk(str(tmp_path / "turns_dataset"))
    assert loaded.num_rows == 0 and "text" in loaded.column_names


@pytest.mark.parametrize("runner", ["local", "inline"])
def test_privacy_hostile_full_disk_is_a_clean_cli_error(write_file, tmp_path, monkeypatch, runner):
    from flows import code_corpus
    from pipeline.run import local

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out" / "turns.jsonl"))

    monkeypatch.setattr(code_corpus, "run_code_corpus", full)
    monkeypatch.setattr(local, "code_corpus", full)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    result = invoke("code", write_file("in/a.csv", "speaker,text\nT,Hello.\nC,Hi.\n"), "--out", tmp_path / "out",
                    "--runner", runner)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert re.match(r"error: .*turns\.jsonl: could not write the outputs; found No space left on device; fix: free "
                    r"disk space .* run the same command again", result.stderr)


def test_privacy_hostile_write_failure_names_the_os_error_not_the_text():
    from pipeline.run.steps import failure

    task = SimpleNamespace(key="s1", path="a.csv")
    problem = failure(task, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/secret/text"), "write")
    assert problem.message == "OSError during write (No space left on device)"


# --- full runs: a full disk, Ctrl-C -----------------------------------------------------------

LINES = [("T", "What would you like to focus on today?"), ("C", "I don't know. Whatever you think is best."),
         ("T", "It sounds hard to choose. Can we stay with that for a moment?"),
         ("C", "This is pointless, we keep going over the same thing."),
         ("T", "You're right to say so. I may have been pushing my own agenda."), ("C", "Maybe. Fine.")]
HERE = Path(__file__).parent
START_TIMEOUT_S = 600


def many_sessions(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    rows = ["session_id,turn,speaker,start,end,text"]
    for s in range(n):
        rows += [f"s-{s:02d},{i + 1},{who},{i * 10},{i * 10 + 8},\"{text} ({s})\"" for i, (who, text) in enumerate(LINES)]
    (folder / "sessions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return [folder / "sessions.csv"]


def cli_env(tmp_path: Path) -> dict:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect home"), "COLUMNS": "200",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(START_TIMEOUT_S), "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    return env


def reference_run(code_with_tasks, inputs, bundle, out: Path) -> None:
    from pipeline.run.steps import RunConfig

    code_with_tasks(inputs, RunConfig(out=str(out), model=str(bundle), chunk_size=1, cache_dir=str(out / ".cache")))


def code_args(inputs, out, bundle, runner: str = "local") -> list[str]:
    """Through Prefect by default (one small file would otherwise be coded in process)."""
    return ["code", *map(str, inputs), "--out", str(out), "--model", str(bundle), "--chunk-size", "1",
            "--runner", runner]


FULL_DISK_CLI = ("import sys; sys.path.insert(0, sys.argv[1]); from canaries import install_full_disk; "
                 "install_full_disk(int(sys.argv[2])); from pipeline.cli._app import main; "
                 "sys.argv = ['rupture-coder', *sys.argv[3:]]; main()")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_privacy_hostile_disk_full_mid_run_then_a_later_run_completes(tmp_path, tiny_bundle, code_with_tasks,
                                                                       snapshot, same_tree):
    inputs = many_sessions(tmp_path / "inputs", 4)
    reference_run(code_with_tasks, inputs, tiny_bundle, tmp_path / "reference")
    ref = snapshot(tmp_path / "reference", (".cache/",))
    first = [name for name in ref if name.startswith((".state/plan-cache", ".state/s-00", "timelines/s-00", "report/s-00"))]
    budget = sum(len(ref[name]) for name in first) + 100  # the disk fills while the 2nd session is written
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", FULL_DISK_CLI, str(HERE), str(budget), *code_args(inputs, out, tiny_bundle)],
                          capture_output=True, text=True, timeout=START_TIMEOUT_S + 300, env=cli_env(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert re.match(r"error: .*: could not write the outputs; found No space left on device; fix: ", last), proc.stderr
    assert temp_files(out) == []
    files = snapshot(out, (".cache/",))
    assert ".state/s-00.json" in files and "turns.jsonl" not in files
    half_written = [name for name, data in files.items() if ref.get(name) != data]
    assert half_written == [], "outputs that differ from a complete run's"

    again = subprocess.run([str(SCRIPT), *code_args(inputs, out, tiny_bundle)], capture_output=True, text=True,
                           timeout=START_TIMEOUT_S + 300, env=cli_env(tmp_path))
    assert again.returncode == 0, again.stdout + again.stderr
    same_tree(snapshot(out, (".cache/",)), ref)


def start_code(inputs, out, bundle, env) -> subprocess.Popen:
    return subprocess.Popen([str(SCRIPT), *code_args(inputs, out, bundle)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def interrupt_mid_run(proc: subprocess.Popen, out: Path, committed: int, group: bool) -> tuple[str, str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while proc.poll() is None and len(list((out / ".state").glob("*.json"))) < committed:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    if group:  # Ctrl-C in a terminal: the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    else:  # kill -INT PID: the CLI alone
        os.kill(proc.pid, signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # a hung run must not outlive the test (stop 30 found one left running)
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        pytest.fail(f"the run did not exit within 60 s of SIGINT (group={group}); its stderr ends: {stderr[-800:]!r}")
    return stdout, stderr


def leftover_processes(prefect_home: Path) -> list[int]:
    import psutil

    left = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PREFECT_HOME") == str(prefect_home):
                left.append(proc.pid)
        except psutil.Error:
            pass
    return left


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_privacy_hostile_ctrl_c_mid_run_exits_130_and_resumes(tmp_path, tiny_bundle, code_with_tasks, snapshot,
                                                              same_tree):
    inputs = many_sessions(tmp_path / "inputs", 12)
    reference_run(code_with_tasks, inputs, tiny_bundle, tmp_path / "reference")
    env, out = cli_env(tmp_path), tmp_path / "out"
    for committed, group in ((2, True), (5, False)):
        proc = start_code(inputs, out, tiny_bundle, env)
        stdout, stderr = interrupt_mid_run(proc, out, committed, group)
        assert proc.returncode == 130, stdout + stderr
        assert "Traceback" not in stdout + stderr and "ERROR" not in stderr, stderr
        assert stderr.strip().splitlines()[-1] == ("interrupted: sessions coded so far are kept; run the same "
                                                   "command again to resume")
        time.sleep(1)
        assert leftover_processes(tmp_path / "prefect home") == [], "a child process outlived the CLI"
        assert not (out / "run.json").exists()
    final = subprocess.run([str(SCRIPT), *code_args(inputs, out, tiny_bundle)], capture_output=True, text=True,
                           timeout=START_TIMEOUT_S + 300, env=env)
    assert final.returncode == 0, final.stdout + final.stderr
    assert re.search(r"skipped \(unchanged\)\W+([5-9]|1[0-2])\W", final.stdout), final.stdout
    same_tree(snapshot(out, (".cache/",)), snapshot(tmp_path / "reference", (".cache/",)))
