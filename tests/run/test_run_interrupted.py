"""A coding run killed (SIGKILL) at random points and resumed ends with the same files as an
uninterrupted run: `rupture-coder code` as a real subprocess, with its own Prefect server."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "rupture-coder"
N_SESSIONS = 6
KILLS = 4
# The embedding cache keeps whatever a killed run had embedded (docs/formats-and-outputs.md): not compared.
CACHE = (".cache/",)
START_TIMEOUT_S = 300  # Python imports plus Prefect's temporary server, on a loaded machine
LINES = [("T", "What would you like to focus on today?"), ("C", "I don't know. Whatever you think is best."),
         ("T", "It sounds hard to choose. Can we stay with that for a moment?"),
         ("C", "This is pointless, we keep going over the same thing."),
         ("T", "You're right to say so. I may have been pushing my own agenda.")]


def transcripts(folder: Path) -> list[Path]:
    """Five short sessions in a CSV and one in a text file."""
    folder.mkdir()
    rows = ["session_id,turn,speaker,start,end,text"]
    for s in range(1, N_SESSIONS):
        rows += [f"s-{s},{i + 1},{who},{i * 10},{i * 10 + 8},\"{text}\"" for i, (who, text) in enumerate(LINES[s % 2:])]
    (folder / "sessions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "single.txt").write_text("".join(f"{who}: {text}\n" for who, text in LINES), encoding="utf-8")
    return [folder / "sessions.csv", folder / "single.txt"]


def start(inputs: list[Path], out: Path, bundle: Path, env: dict) -> subprocess.Popen:
    command = [str(SCRIPT), "code", *map(str, inputs), "--out", str(out), "--model", str(bundle), "--chunk-size", "1"]
    # a session of its own: the kill reaches the CLI and the Prefect server it started
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def states(out: Path) -> int:
    return len(list((out / ".state").glob("*.json")))


def written_since(out: Path, since_ns: int) -> bool:
    """Whether a file under ``out`` was created or changed after ``since_ns`` (the embedding
    cache is the first, then timelines, states, corpus files)."""
    return any(p.stat().st_mtime_ns > since_ns for p in out.rglob("*") if p.is_file())


def kill_after(proc: subprocess.Popen, out: Path, since_ns: int, committed: int, delay: float) -> bool:
    """SIGKILL the run ``delay`` seconds after it has written something and ``committed``
    sessions are stored; False when it ended first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while proc.poll() is None and not (states(out) >= committed and written_since(out, since_ns)):
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    time.sleep(delay)
    alive = proc.poll() is None
    if alive:
        os.killpg(proc.pid, signal.SIGKILL)
    log = proc.communicate(timeout=60)[0]
    assert alive or proc.returncode == 0, log  # a run that ended by itself must have succeeded
    return alive


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_run_killed_at_random_points_resumes_to_the_same_files(tiny_bundle, tmp_path, snapshot, same_tree,
                                                               prefect_env):
    inputs = transcripts(tmp_path / "inputs")
    env = prefect_env(tmp_path / "prefect-home")
    reference = start(inputs, tmp_path / "reference", tiny_bundle, env)
    log = reference.communicate(timeout=START_TIMEOUT_S + 300)[0]
    assert reference.returncode == 0, log

    seed = int(os.environ.get("RC_KILL_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    # kill points, as sessions stored before the kill: first as soon as the flow writes (none
    # stored yet), then at random, last when all are stored, while the corpus files are written
    targets = [0, *sorted(rng.sample(range(1, N_SESSIONS), KILLS - 2)), N_SESSIONS]
    out, kills, points, expected = tmp_path / "interrupted", 0, [], KILLS
    for target in targets:
        for attempt in range(4):  # a run may finish before its kill lands: then try again, at once
            # (after the last session is stored, a run of tiny sessions ends within 0.1 s: seed 49963
            # missed it with delays of 1.04, 1.37 and 0.09 s)
            delay = rng.uniform(0, 2.5 if target == N_SESSIONS else 0.6) if attempt == 0 else 0.0
            since = time.time_ns()
            killed = kill_after(start(inputs, out, tiny_bundle, env), out, since, target, delay)
            points.append((target, round(delay, 2), killed))
            if killed:
                kills += 1
                break
        else:
            if target == N_SESSIONS:
                # once the last session is stored, what is left (the corpus files of tiny
                # sessions) can end before any kill lands: with the first delay drawn (seed
                # 28989: 1.57 s, after three kills that had stored 3 sessions), and within 0.1 s
                # on a resumed run; each such run ended by itself with success (kill_after
                # checks), so the point is not counted
                expected -= 1
    print(f"seed {seed} (set RC_KILL_SEED to repeat): (stored sessions, delay s, killed) {points}")
    assert kills == expected >= KILLS - 1, f"seed {seed}: only {kills} kills at {points}"
    final = start(inputs, out, tiny_bundle, env)
    log = final.communicate(timeout=START_TIMEOUT_S + 300)[0]
    assert final.returncode == 0, f"seed {seed}, kills at {points}:\n{log}"
    same_tree(snapshot(out, CACHE), snapshot(tmp_path / "reference", CACHE))


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the server is bound to its parent on Linux only")
def test_run_killed_leaves_no_prefect_server_behind(tiny_bundle, tmp_path):
    """Issue #16: SIGKILL of the CLI alone (not its process group) also ends Prefect's temporary
    API server, which the kernel signals when its parent dies."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = start(transcripts(tmp_path / "inputs"), tmp_path / "out", tiny_bundle, env)
    try:
        deadline, server = time.monotonic() + START_TIMEOUT_S, None
        while server is None and time.monotonic() < deadline and proc.poll() is None:
            server = next((pid for pid, cmd in _children(proc.pid) if "uvicorn" in cmd), None)
            time.sleep(0.2)
        assert server is not None, "no Prefect server child seen"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{server}").exists() and time.monotonic() < deadline:
            try:
                if (Path(f"/proc/{server}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break  # ended; a zombie until its new parent reaps it
            except OSError:
                break
            time.sleep(0.2)
        alive = Path(f"/proc/{server}").exists() and \
            (Path(f"/proc/{server}") / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        assert not alive, "the Prefect server outlived the killed run"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the session
        except ProcessLookupError:
            pass
