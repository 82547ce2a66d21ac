"""The background worker (`rupture-coder worker start|status|stop`, issue #14): start, status and
stop; a job through it writes the same bytes as an inline run, with the same messages and exit
status; the client imports none of torch, sentence-transformers, scikit-learn or spaCy; a stale
socket falls back to coding in process; the worker's folder and socket are private (refused
otherwise); the idle timeout; Ctrl-C in the client.

Workers run the small hashing-embedder bundle (``tiny_bundle``), except the slow test, which
runs the shipped model. Every worker a test starts is stopped by its fixture. The code
fingerprint (:func:`pipeline.run.worker.code_fingerprint`) changes when anyone edits a source
file: a worker started before the edit no longer takes jobs, so the helpers restart it first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli._app import app
from pipeline.errors import ConfigError, InputFormatError
from pipeline.run import worker

SCRIPT = Path(sys.executable).parent / "rupture-coder"
ROOT = Path(__file__).resolve().parents[2]
WIDE = {"COLUMNS": "200"}
HEAVY = ("torch", "sentence_transformers", "transformers", "sklearn", "spacy", "thinc")
GOOD_CSV = ("session_id,turn,speaker,start,end,text\n"
            "g-1,1,T,0,6,What would you like to focus on today?\n"
            "g-1,2,C,6,12,I don't know. Whatever you think.\n"
            "g-1,3,T,12,20,It sounds hard to choose. Can we stay with that?\n"
            "g-1,4,C,20,26,This is pointless. We keep going over the same thing.\n")
PHI_CSV = "session_id,turn,speaker,text\np-1,1,T,Welcome.\np-1,2,C,You can reach me at 555-123-4567 any time.\n"
# the client in a subprocess, reporting which heavy libraries it imported (at exit, whatever the status)
CLIENT = ("import atexit, json, sys\n"
          "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + json.dumps(sorted(m for m in sys.modules "
          "if m.split('.')[0] in %r)) + '\\n'))\n"
          "sys.argv = ['rupture-coder', *sys.argv[1:]]\n"
          "from pipeline.cli import main\nmain()\n") % (HEAVY,)


def private_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="rc-w-"))  # mode 0700; short enough for a socket path


def env() -> dict:
    out = {**os.environ, **WIDE, "PYTHONUNBUFFERED": "1"}
    out.pop("PREFECT_API_URL", None)
    return out


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=WIDE)


def client(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLIENT, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env(), cwd=ROOT)


def client_modules(proc: subprocess.CompletedProcess) -> list[str]:
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES ")][-1]
    return json.loads(line.split(" ", 1)[1])


def without_time(text: str) -> str:
    """Console output without its timings (the progress bar's line, the summary's time)."""
    lines = [line.rstrip() for line in text.splitlines() if not line.startswith(("coding ", "MODULES "))
             and not any(c in line for c in "│┌└├")]  # the summary table, compared by summary_rows
    return "\n".join([*lines, *map(str, summary_rows(text))]).strip()


def summary_rows(text: str) -> list[tuple[str, str]]:
    """The run summary's rows (what, n) but the time, and the failure lines."""
    rows = [(a, b) for a, b in re.findall(r"│\s*([^│\n]+?)\s*│\s*([^│\n]+?)\s*│", text) if a != "time"]
    return rows + [(line.strip(), "") for line in text.splitlines() if line.startswith("failed ")]


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def jobs_done() -> int:
    hello = worker.status()
    return -1 if hello is None else hello["jobs_done"]


class Served:
    """A worker in a private folder, for ``model``; ``current()`` restarts it when the code
    changed since it started."""

    def __init__(self, model: str | None, idle_timeout_s: float = 600):
        self.model, self.idle_timeout_s = model, idle_timeout_s
        self.folder = private_folder()
        self.hello: dict = {}

    def __enter__(self) -> "Served":
        self.previous = os.environ.get(worker.RUNTIME_ENV)
        os.environ[worker.RUNTIME_ENV] = str(self.folder)
        self.hello = worker.start(self.model, self.idle_timeout_s)
        return self

    def current(self) -> "Served":
        hello = worker.status()
        if hello is None or hello["identity"] != worker.identity(self.model):
            worker.stop()
            self.hello = worker.start(self.model, self.idle_timeout_s)
        return self

    def __exit__(self, *exc) -> None:
        try:
            worker.stop(timeout=60)
        finally:
            pid = worker._worker_pid(self.folder)
            if pid is not None:  # did not stop: make sure
                os.kill(pid, signal.SIGKILL)
            if self.previous is None:
                os.environ.pop(worker.RUNTIME_ENV, None)
            else:
                os.environ[worker.RUNTIME_ENV] = self.previous
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tiny_bundle):
    with Served(str(tiny_bundle)) as s:
        yield s


@pytest.fixture
def runtime(monkeypatch):
    """A private folder for a worker of this test alone; any worker left in it is stopped."""
    folder = private_folder()
    monkeypatch.setenv(worker.RUNTIME_ENV, str(folder))
    yield folder
    try:
        worker.stop(timeout=60)
    finally:
        pid = worker._worker_pid(folder)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def test_worker_folder_socket_and_log_are_private(served):
    hello = cli("worker", "status", "--json")
    assert hello.exit_code == 0, hello.output
    info = json.loads(hello.stdout)
    assert info["running"] and info["identity"]["model"]["name"] == "tiny"
    assert stat.S_IMODE(os.stat(served.folder).st_mode) == 0o700
    for name, mode in (("worker.sock", 0o600), ("worker.log", 0o600), ("worker.pid", 0o600)):
        st = os.stat(served.folder / name)
        assert stat.S_IMODE(st.st_mode) == mode and st.st_uid == os.getuid(), name
    assert stat.S_ISSOCK(os.stat(served.folder / "worker.sock").st_mode)
    # the worker is a Unix socket only: it holds no inet socket
    pid = info["pid"]
    inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")
              if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")}
    inet = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text() + \
        Path("/proc/net/udp").read_text() + Path("/proc/net/udp6").read_text()
    assert inodes and not any(i[len("socket:["):-1] in inet.split() for i in inodes)


def test_worker_job_writes_the_bytes_of_an_inline_run_and_imports_no_model_library(served, tiny_bundle, tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    (data / "one.csv").write_text(GOOD_CSV, encoding="utf-8")
    (data / "phi.csv").write_text(PHI_CSV, encoding="utf-8")
    for name, code in (("one.csv", 0), ("phi.csv", 1)):  # a coded session; one the gate keeps from coding
        for attempt in range(2):
            served.current()
            before = jobs_done()
            via = client("code", data / name, "--out", tmp_path / f"w-{name}-{attempt}", "--model", tiny_bundle)
            if jobs_done() == before + 1:
                break  # else the code changed between the check and the job: again
        assert jobs_done() == before + 1, "the job did not go through the worker"
        assert via.returncode == code, via.stderr
        assert client_modules(via) == [], "the client imported a model library"
        # a fresh process (as a user runs it): in this one, the embedding cache's SQLite stays open
        inline = client("code", data / name, "--out", tmp_path / f"i-{name}", "--model", tiny_bundle,
                        "--runner", "inline")
        assert inline.returncode == code, inline.stderr
        assert without_time(via.stdout).replace(f"w-{name}-{attempt}", "X") == \
            without_time(inline.stdout).replace(f"i-{name}", "X")
        assert tree(tmp_path / f"w-{name}-{attempt}") == tree(tmp_path / f"i-{name}")  # every file, the cache too
    log = (served.folder / "worker.log").read_text()
    assert "555" not in log and "focus" not in log and "one.csv" not in log and str(tmp_path) not in log


def test_worker_job_errors_print_as_inline(served, tiny_bundle, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\nT,hello\n", encoding="utf-8")
    served.current()
    via = client("code", bad, "--out", tmp_path / "out-worker", "--model", tiny_bundle, "--runner", "worker")
    inline = client("code", bad, "--out", tmp_path / "out-inline", "--model", tiny_bundle, "--runner", "inline")
    assert via.returncode == inline.returncode != 0
    assert without_time(via.stdout).replace("out-worker", "X") == without_time(inline.stdout).replace("out-inline", "X")
    assert without_time(via.stderr) == without_time(inline.stderr)


@pytest.mark.parametrize("err", [
    InputFormatError("missing column(s) speaker", path="/x/a.csv", line=3, expected="a header", fix="map them"),
    ConfigError("bad option", found="7"),
    OSError(28, "No space left on device", "/x/out/turns.jsonl"),
])
def test_worker_errors_cross_the_socket_unchanged(err):
    back = worker._error_from(json.loads(json.dumps(worker._error_message(err))))
    assert type(back) is type(err) and str(back) == str(err)


def test_no_worker_runner_worker_is_a_clear_error_and_auto_codes_in_process(runtime, tiny_bundle, tmp_path, caplog):
    source = tmp_path / "one.csv"
    source.write_text(GOOD_CSV, encoding="utf-8")
    result = cli("code", source, "--out", tmp_path / "w", "--model", tiny_bundle, "--runner", "worker")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith("error: no background worker is running")
    assert "fix: start one with `rupture-coder worker start`" in result.stderr
    # a stale socket (the worker was killed): auto falls back silently, with a debug line
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(runtime / "worker.sock"))
    dead.close()
    with caplog.at_level("DEBUG", logger="pipeline.run.worker"):
        assert worker.worker_for(str(tiny_bundle), explicit=False) is None
    assert "no background worker" in caplog.text
    auto = cli("code", source, "--out", tmp_path / "a", "--model", tiny_bundle)
    assert auto.exit_code == 0, auto.output
    assert auto.stderr == "" and (tmp_path / "a" / "report" / "index.html").exists()
    stale = cli("code", source, "--out", tmp_path / "w", "--model", tiny_bundle, "--runner", "worker")
    assert stale.exit_code == 2 and "no background worker is running" in stale.stderr
    assert cli("worker", "status").exit_code == 1
    assert cli("worker", "stop").stdout.strip() == "no worker running"
    assert not (runtime / "worker.sock").exists()  # the stale socket was cleared


@pytest.mark.parametrize("what", ["readable by others", "a symbolic link"])
def test_worker_refuses_a_folder_that_is_not_private(runtime, tiny_bundle, tmp_path, what):
    if what == "readable by others":
        os.chmod(runtime, 0o755)
    else:
        target = private_folder()
        shutil.rmtree(runtime)
        runtime.symlink_to(target)
    try:
        for args in (("worker", "start", "--model", tiny_bundle),
                     ("code", tmp_path / "x.csv", "--out", tmp_path / "o", "--runner", "worker")):
            (tmp_path / "x.csv").write_text(GOOD_CSV, encoding="utf-8")
            result = cli(*args)
            assert result.exit_code == 2, result.output
            assert "the background worker's folder is not private" in result.stderr
        assert not (runtime / "worker.sock").exists()
    finally:
        if what == "a symbolic link":
            runtime.unlink()
            shutil.rmtree(target, ignore_errors=True)
            runtime.mkdir(mode=0o700)
        os.chmod(runtime, 0o700)


def test_worker_start_status_stop_and_idle_timeout(runtime, tiny_bundle):
    start = cli("worker", "start", "--model", tiny_bundle, "--idle-timeout", "30")
    assert start.exit_code == 0, start.output
    assert "worker ready" in start.stdout
    again = cli("worker", "start", "--model", tiny_bundle)
    assert again.exit_code == 0 and "already running" in again.stdout
    other = cli("worker", "start")  # the shipped model: another model than the one running
    assert other.exit_code == 2 and "another model" in other.stderr
    status = cli("worker", "status")
    assert status.exit_code == 0 and "running: pid" in status.stdout and "tiny/0.0.1" in status.stdout
    pid = worker.status()["pid"]
    stop = cli("worker", "stop")
    assert stop.exit_code == 0 and f"worker stopped (pid {pid})" in stop.stdout
    assert not worker._alive(pid)
    assert not (runtime / "worker.sock").exists() and not (runtime / "worker.pid").exists()
    assert cli("worker", "status").exit_code == 1
    # idle timeout: the worker exits by itself and removes its socket and pid file
    hello = worker.start(str(tiny_bundle), idle_timeout_s=2)
    deadline = time.monotonic() + 60
    while worker._alive(hello["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not worker._alive(hello["pid"])
    assert not (runtime / "worker.sock").exists() and not (runtime / "worker.pid").exists()
    assert "exiting: idle for 2 s" in (runtime / "worker.log").read_text()


def test_ctrl_c_in_the_client_cancels_the_job_and_keeps_the_sessions(served, tiny_bundle, tmp_path):
    rows = ["session_id,turn,speaker,text"]
    for s in range(40):
        rows += [f"s-{s},{i + 1},{'TC'[i % 2]},Turn {i} of a long session about the week." for i in range(6)]
    source = tmp_path / "many.csv"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    served.current()
    before = jobs_done()
    proc = subprocess.Popen([str(SCRIPT), "code", str(source), "--out", str(out), "--model", str(tiny_bundle),
                             "--runner", "worker", "--chunk-size", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    deadline = time.monotonic() + 120
    while proc.poll() is None and len(list((out / ".state").glob("*.json"))) < 2:
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: sessions coded so far are kept; run the same command again to resume" in err
    deadline = time.monotonic() + 60
    while (worker.status() or {}).get("busy") and time.monotonic() < deadline:
        time.sleep(0.1)
    hello = worker.status()
    assert hello is not None and not hello["busy"] and hello["jobs_done"] == before + 1
    assert "cancelled by the client" in (served.folder / "worker.log").read_text()
    kept = len(list((out / ".state").glob("*.json")))
    assert 2 <= kept < 40
    again = cli("code", source, "--out", out, "--model", tiny_bundle, "--runner", "worker", "--chunk-size", "1")
    assert again.exit_code == 0, again.output
    assert re.search(rf"skipped \(unchanged\)\W+{kept}\W", again.stdout)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_worker_with_the_shipped_model_matches_inline_on_a_real_session(tmp_path):
    """The shipped model, the 113-turn example session: byte for byte the inline run's files,
    the client without torch, sentence-transformers, scikit-learn or spaCy; timings printed."""
    source = ROOT / "examples" / "telehealth_cbt_session.vtt"
    with Served(None) as served:
        for attempt in range(2):
            served.current()
            before = jobs_done()
            begun = time.perf_counter()
            via = client("code", source, "--out", tmp_path / f"w{attempt}")
            seconds = time.perf_counter() - begun
            if jobs_done() == before + 1:
                break
        assert jobs_done() == before + 1 and via.returncode == 0, via.stderr
        assert client_modules(via) == []
        begun = time.perf_counter()
        inline = client("code", source, "--out", tmp_path / "i", "--runner", "inline")
        print(f"one session: worker {seconds:.1f} s, in process {time.perf_counter() - begun:.1f} s")
        assert inline.returncode == 0, inline.stderr
        assert tree(tmp_path / f"w{attempt}") == tree(tmp_path / "i")
