"""The cores' budget of a fresh ``rupture-coder code`` run against the raw encoder (issue #15).

A cold run cannot finish before its CPU time divided by the cores it has, however well its work
overlaps. This measures both sides in pairs, alternated: a raw encoder pass in a fresh process
(the bench's baseline: the model on the corpus's unique texts; wall and CPU time around the
encode only), then ``rupture-coder code`` on the same inputs in a fresh process, into an empty
folder with an empty cache and PNGs on, as the issue's target reads. The run's total CPU time
(user + system, every process of its tree) comes from its wait status; each process's share is
sampled from ``/proc`` four times a second and named by role (main, encoder, writer, Prefect
server), never by its arguments. Per pair it prints the ratio (raw seconds / run seconds), the
CPU times and the **packing bound**: raw seconds / max(raw seconds, run CPU / cores), the ratio
a run with this much CPU work could reach if both cores were busy from its first to its last
second. Linux only.

    python benchmarks/cpu_budget.py ../shared/data/hlqc/hlqc_dev.csv --pairs 3

``--json FILE`` keeps the pairs; ``--option=--runner=local`` (repeatable) passes options to
``code``. No transcript text is printed or written; the run folders are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_over_time import role, tree  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: fields 14 and 15 of stat(5)
    except (OSError, ValueError, IndexError):
        return None


def raw_pass(inputs: list[str], model: str | None) -> dict:
    """The raw encoder on the inputs' unique texts, in this process: seconds, CPU seconds, texts."""
    import pipeline.offline  # noqa: F401  (no network, as the CLI)
    from pipeline.modeling.embed import get_embedder
    from pipeline.run import steps as lib
    from pipeline.run.bench import embedded_texts, plain_encode

    with tempfile.TemporaryDirectory(prefix="rc-cpu-") as tmp:
        unique = list(dict.fromkeys(embedded_texts(inputs, Path(tmp) / "plan", model)[1]))
    embedder = get_embedder(lib.cached_bundle(model, None).model.embedder)
    embedder.encode(["warm-up"])
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    plain_encode(embedder, unique)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"seconds": round(seconds, 2), "cpu": round(cpu, 1), "texts": len(unique)}


def code_run(inputs: list[str], options: list[str], interval: float) -> dict:
    """``rupture-coder code`` in a fresh process into an empty folder: seconds, exit status, total
    CPU seconds (its wait status) and CPU seconds by process role (sampled)."""
    from pipeline.run.bench import SCRIPT

    with tempfile.TemporaryDirectory(prefix="rc-cpu-") as tmp:
        cmd = [sys.executable, str(SCRIPT), "code", *inputs, "--out", str(Path(tmp) / "out"), "--phi", "warn", *options]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        last: dict[int, float] = {}
        roles: dict[int, str] = {}
        while True:
            done, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if done:
                break
            for pid in tree(proc.pid):
                cpu = cpu_seconds(pid)
                if cpu is not None:
                    last[pid] = cpu
                    if roles.get(pid, "other") == "other":
                        roles[pid] = role(pid)
            time.sleep(interval)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    total = usage.ru_utime + usage.ru_stime
    by_role: dict[str, float] = {}
    for pid, cpu in last.items():
        name = "main" if roles[pid] == "code" else roles[pid]
        by_role[name] = by_role.get(name, 0.0) + cpu
    by_role["not sampled"] = max(0.0, total - sum(by_role.values()))  # last moments, short-lived processes
    return {"seconds": round(seconds, 2), "exit": proc.returncode, "cpu": round(total, 1),
            "cpu_by_process": {k: round(v, 1) for k, v in sorted(by_role.items(), key=lambda kv: -kv[1])}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--model", default=None)
    parser.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--json", default=None, help="write the pairs here")
    parser.add_argument("--option", action="append", default=[], metavar="OPT",
                        help="one more `code` option, e.g. --option=--runner=local (repeatable)")
    parser.add_argument("--raw-pass", action="store_true", help=argparse.SUPPRESS)  # the child of a pair
    args = parser.parse_args(argv)
    if args.raw_pass:
        print(json.dumps(raw_pass(args.inputs, args.model)))
        return
    options = args.option + ([f"--model={args.model}"] if args.model else [])
    pairs = []
    print(f"{args.cores} cores | raw s | raw CPU s | run s | run CPU s | ratio | packing bound | run CPU by process (s)")
    for _ in range(args.pairs):
        child = [sys.executable, __file__, *args.inputs, "--raw-pass"] + (["--model", args.model] if args.model else [])
        raw = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        run = code_run(args.inputs, options, args.interval)
        if run["exit"] not in (0, 1):  # 1: some session failed (reported), still a complete run
            raise SystemExit(f"rupture-coder code exited {run['exit']}")
        pair = {"raw": raw, "run": run, "ratio": round(raw["seconds"] / run["seconds"], 3),
                "bound": round(raw["seconds"] / max(raw["seconds"], run["cpu"] / args.cores), 3)}
        pairs.append(pair)
        shares = ", ".join(f"{k} {v}" for k, v in run["cpu_by_process"].items())
        print(f"| {raw['seconds']} | {raw['cpu']} | {run['seconds']} | {run['cpu']} | {pair['ratio']} | {pair['bound']} | {shares}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cores": args.cores, "options": options, "pairs": pairs}, indent=1) + "\n",
                                   encoding="utf-8")


if __name__ == "__main__":
    main()
