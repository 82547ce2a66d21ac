"""Resident memory of every process of a ``rupture-coder code`` run, over time (issue #15).

The bench reports one number for memory, the peak resident size of the largest process
(``getrusage``). This samples ``/proc`` four times a second for every process in the run's tree
and splits each one's resident size into anonymous pages (what the run allocated) and
file-backed pages (libraries, and files the run maps, such as the Arrow table `datasets` copies
while saving the dataset). Linux only.

    python benchmarks/memory_over_time.py ../shared/data/hope ../shared/data/rogers --sessions 10000
    python benchmarks/memory_over_time.py ../shared/data/hope --sessions 100 --option=--runner=inline

Replicates the input sessions into N one-session files (as ``rupture-coder bench``'s scaling
rows do), codes them with ``rupture-coder code --no-png`` into an empty folder, prints each
process's peaks and writes the samples as CSV (``--csv``: seconds, pid, role, resident,
anonymous, file-backed, MiB). No transcript text is printed; the temporary folder is removed.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIELDS = ("VmRSS", "RssAnon", "RssFile")


def children(pid: int) -> list[int]:
    found = []
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children", encoding="ascii") as fh:
                found += [int(x) for x in fh.read().split()]
    except OSError:  # the process ended meanwhile
        pass
    return found


def tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        pids.append(p)
        stack += children(p)
    return pids


def role(pid: int) -> str:
    """A short name for a process of the run (never its arguments: they name the input files)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv]
    for name in ("uvicorn", "pipeline.run.encoder", "pipeline.run.writer", "rupture-coder"):
        if any(name in w for w in words):
            return {"uvicorn": "prefect-server", "rupture-coder": "code"}.get(name, name.rsplit(".", 1)[-1])
    return "other"


def memory(pid: int) -> tuple[int, int, int] | None:
    """(resident, anonymous, file-backed) in KiB, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            values = {line.split(":")[0]: int(line.split()[1]) for line in fh if line.startswith(FIELDS)}
        return tuple(values.get(f, 0) for f in FIELDS)  # type: ignore[return-value]
    except (OSError, ValueError, IndexError):
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--csv", default=None, help="write every sample here")
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--option", action="append", default=[], metavar="OPT",
                        help="one more `code` option, e.g. --option=--runner=inline (repeatable)")
    args = parser.parse_args(argv)

    import pipeline.offline  # noqa: F401  (no network, as the CLI)
    from pipeline.run import steps as lib
    from pipeline.run.bench import SCRIPT, replicate

    samples: list[tuple[float, int, str, int, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="rc-memory-") as tmp:
        work = Path(tmp)
        base = lib.RunConfig(out=str(work / "out"), phi="warn", png=False)
        plan = lib.plan_run(args.inputs, replace(base, out=str(work / "plan")))
        files = replicate([lib.read_session(task, base) for task in plan.tasks], args.sessions, work / "inputs")
        cmd = [sys.executable, str(SCRIPT), "code", *files, "--out", str(work / "out"), "--phi", "warn",
               "--no-png", "--cache-dir", str(work / "cache"), *args.option]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        roles: dict[int, str] = {}
        while proc.poll() is None:
            now = round(time.perf_counter() - start, 2)
            for pid in tree(proc.pid):
                values = memory(pid)
                if values is None:
                    continue
                if pid not in roles or roles[pid] == "other":
                    roles[pid] = role(pid)
                samples.append((now, pid, roles[pid], *values))
            time.sleep(args.interval)
        seconds = time.perf_counter() - start
    # a process is named by its last sample (its first may come before it has exec'd)
    samples = [(t, pid, roles[pid], *values) for t, pid, _, *values in samples]
    if proc.returncode not in (0, 1):  # 1: some session failed (reported), still a complete run
        raise SystemExit(f"rupture-coder code exited {proc.returncode}")
    print(f"{args.sessions} sessions: exit status {proc.returncode}, {seconds:.1f} s, {len(samples)} samples")
    print("| process | peak resident MiB | peak anonymous MiB | peak file-backed MiB |")
    print("|---|---|---|---|")
    for pid in sorted({s[1] for s in samples}, key=lambda p: -max(s[3] for s in samples if s[1] == p)):
        mine = [s for s in samples if s[1] == pid]
        print(f"| {mine[0][2]} ({pid}) | {max(s[3] for s in mine) // 1024:,} | {max(s[4] for s in mine) // 1024:,} "
              f"| {max(s[5] for s in mine) // 1024:,} |")
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["seconds", "pid", "process", "resident_mib", "anonymous_mib", "file_backed_mib"])
            writer.writerows((t, pid, name, r // 1024, a // 1024, f // 1024) for t, pid, name, r, a, f in samples)


if __name__ == "__main__":
    main()
