"""A re-run after one input file changed: the corpus files copied from the previous run against
rebuilt from every stored state (issue #15).

Replicates the input sessions into N one-session CSV files (as ``rupture-coder bench``'s scaling
rows do), codes them once in this process (library runner, ``--no-png``), then repeats: change
one file, re-run. The runs alternate between the two ways of writing the corpus files, on the
same folder and in the same process: **copy** (the default: ``.state/corpus-index`` lets the
rows of the unchanged sessions be copied from the previous files) and **rebuild** (the index
removed first, so every session's rows are built from its state, as before the index existed).
Both give the same bytes (tested in ``tests/run/test_corpus_index.py``; checked here too: the
corpus files of the last two runs are compared after the same change).

    python benchmarks/rebuild_after_change.py ../shared/data/hope ../shared/data/rogers --sessions 1000 --repeat 3

Prints the whole re-run's seconds and its ``write_corpus`` step's, per run and way. With
``--cli`` each re-run is ``rupture-coder code --no-png`` in a fresh process instead (its whole
time only), the row `rupture-coder bench` reports as "one file changed". Nothing of
the transcripts is printed; the folders live in a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA_FILE = "turns_dataset/data-00000-of-00001.arrow"  # beside uptodate.CORPUS_FILES: the rows themselves


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way, alternated")
    parser.add_argument("--model", default=None)
    parser.add_argument("--cli", action="store_true",
                        help="time each re-run as `rupture-coder code --no-png` in a fresh process (as bench's "
                             "scaling rows) instead of in this one")
    parser.add_argument("--profile", type=int, default=0, metavar="TOP",
                        help="also profile the copy runs (cProfile) and print their TOP functions")
    args = parser.parse_args(argv)
    import cProfile
    import io
    import pstats

    import pipeline.offline  # noqa: F401  (no network, as the CLI)
    from pipeline.io.files import file_sha256
    from pipeline.run import corpus_index, uptodate
    from pipeline.run import steps as lib
    from pipeline.run.bench import _cli, replicate
    from pipeline.run.local import code_corpus

    with tempfile.TemporaryDirectory(prefix="rc-rebuild-") as tmp:
        work = Path(tmp)
        base = lib.RunConfig(out=str(work / "out"), model=args.model, phi="warn", png=False,
                             cache_dir=str(work / "cache"))
        plan = lib.plan_run(args.inputs, replace(base, out=str(work / "plan")))
        sessions = [lib.read_session(task, base) for task in plan.tasks]
        files = replicate(sessions, args.sessions, work / "inputs")
        env = dict(os.environ)
        start = time.perf_counter()
        if args.cli:
            peak = _cli(files, Path(base.out), env, "--no-png", "--cache-dir", base.cache_dir)["peak_rss_mib"]
            print(f"first run peak RSS {peak} MiB")
            first = json.loads((Path(base.out) / "run.json").read_text(encoding="utf-8"))["counts"]
        else:
            first = code_corpus(files, base)
        print(f"{args.sessions} sessions, {first['turns']} turns; first run {time.perf_counter() - start:.1f} s")
        changed = work / "inputs" / "s00000.csv"  # as in bench: the first replica
        results: dict[str, list[tuple[float, float]]] = {"copy": [], "rebuild": []}
        seen: dict[tuple[str, bool], dict[str, str]] = {}
        profiles: list = []
        for i in range(2 * args.repeat):
            way = ("copy", "rebuild", "rebuild", "copy")[i % 4]  # ABBA: each way sees both versions
            # the same edit each time, alternating two versions of the file: both ways see one changed file
            lines = changed.read_text(encoding="utf-8").splitlines(keepends=True)
            extra = "r00000,9999,C,,,And one more thing.\n"
            added = lines[-1] != extra
            changed.write_text("".join(lines) + extra if added else "".join(lines[:-1]), encoding="utf-8")
            if way == "rebuild":
                corpus_index.clear(base.out)
            steps: dict[str, float] = {}
            start_wall = time.time()
            profiler = cProfile.Profile() if args.profile and way == "copy" else None
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            if args.cli:  # --runner auto: one small changed file is coded in that process, without Prefect
                peak = _cli(files, Path(base.out), env, "--no-png", "--cache-dir", base.cache_dir)["peak_rss_mib"]
                # run.json keeps no per-run counts: the states written by this run say what it coded
                written = [p for p in (Path(base.out) / ".state").glob("*.json") if p.stat().st_mtime >= start_wall]
                summary = {"coded_this_run": len(written)}
            else:
                summary = code_corpus(files, base, lambda name, s: steps.__setitem__(name, steps.get(name, 0.0) + s))
            if profiler:
                profiler.disable()
                profiles.append(profiler)
            total = time.perf_counter() - start
            assert summary["coded_this_run"] == 1, summary["coded_this_run"]
            results[way].append((total, steps.get("write_corpus", float("nan"))))
            print(f"run {i + 1} ({way}): re-run {total:.2f} s"
                  + (f", peak RSS {peak} MiB" if args.cli else f", write_corpus {steps.get('write_corpus', 0):.2f} s"))
            seen[way, added] = {n: file_sha256(Path(base.out) / n) for n in (*uptodate.CORPUS_FILES, DATA_FILE)
                                if (Path(base.out) / n).exists()}  # hashes: the files can be gigabytes
        pairs = [v for v in (True, False) if ("copy", v) in seen and ("rebuild", v) in seen]
        same = all(seen["copy", v] == seen["rebuild", v] for v in pairs)
        print(f"corpus files of a copy and a rebuild run on the same input identical: {same} ({len(pairs)} compared)")
        for way, runs in results.items():
            print(f"{way}: re-run median {statistics.median(r[0] for r in runs):.2f} s "
                  f"({', '.join(f'{r[0]:.2f}' for r in runs)})" + ("" if args.cli else
                  f", write_corpus median {statistics.median(r[1] for r in runs):.2f} s "
                  f"({', '.join(f'{r[1]:.2f}' for r in runs)})"))
        if profiles:  # the copy runs' functions, summed (cProfile adds its own overhead)
            buffer = io.StringIO()
            stats = pstats.Stats(profiles[0], stream=buffer)
            for other in profiles[1:]:
                stats.add(other)
            stats.strip_dirs().sort_stats("cumulative").print_stats(args.profile)
            print(f"--- copy runs under cProfile, top {args.profile} by cumulative time, {len(profiles)} runs summed ---")
            print(buffer.getvalue().split("\n\n", 1)[-1].strip())


if __name__ == "__main__":
    main()
