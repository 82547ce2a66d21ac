"""Per-session rendering cost: the HTML page, the PNG timeline and the timeline files.

A coding run writes, per session, ``report/<id>.html``, ``timelines/<id>.png`` and
``timelines/<id>.json``/``.csv`` (``pipeline/run/finish.py:write_session_artifacts``, the
``write_sessions`` step). This script times the three parts separately on sessions already
coded, read back from a run folder's stored session states (``<run>/.state/<key>.json``), and
optionally profiles the PNG with cProfile.

Make a run folder first (embeddings cached, so the encoder is quick), e.g.::

    rupture-coder code ../shared/data/hlqc/hlqc_dev.csv --out /tmp/rc_hlqc \\
        --cache-dir .cache/rupture-coder --runner inline --phi warn --no-png

then::

    python benchmarks/profile_render.py /tmp/rc_hlqc --sessions 60 --repeat 3 --profile 25

Output: per part, milliseconds per session (mean over the sessions of one pass; the best and
the median of ``--repeat`` passes, the machine being shared and noisy), the first call apart
(imports, font cache), and with ``--profile K`` the top K functions of the PNG by cumulative
time. ``--threads T`` also renders the PNGs from T threads at once and checks that the bytes
equal the sequential ones. ``--save DIR`` keeps the written files (else a temporary folder).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.io.files import (
    TIMELINE_CSV_FIELDS,
    atomic_write,
    safe_filename,
    timeline_csv_rows,
    write_csv,
    write_json,
)


def load_states(run: Path, n: int | None) -> list[dict]:
    """The stored results of a run (turns, timeline, session row), in file-name order."""
    paths = sorted(p for p in (run / ".state").glob("*.json"))
    out = []
    for p in paths[:n] if n else paths:
        with open(p, encoding="utf-8") as fh:
            fh.readline()  # the fingerprint line
            out.append(json.loads(fh.readline()))
    if not out:
        raise SystemExit(f"no stored session states in {run / '.state'}: code some sessions first")
    return out


def parts(out: Path):
    from pipeline.report.html import page_name, render_session_report
    from pipeline.report.plots import plot_timeline

    def html(r):
        atomic_write(out / "report" / page_name(r["session"]["session_id"]),
                     render_session_report(r["session"], r["turns"], r["timeline"]))

    def png(r):
        plot_timeline(r["turns"], r["timeline"], out / "timelines" / f"{safe_filename(r['session']['session_id'])}.png")

    def timelines(r):
        name = safe_filename(r["session"]["session_id"])
        write_json(out / "timelines" / f"{name}.json", r["timeline"])
        write_csv(out / "timelines" / f"{name}.csv", TIMELINE_CSV_FIELDS, timeline_csv_rows(r["timeline"]))

    return {"html": html, "png": png, "timelines": timelines}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run folder (with .state/)")
    ap.add_argument("--sessions", type=int, default=60, help="first N sessions (0: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, help="cProfile the PNGs: top K functions")
    ap.add_argument("--threads", type=int, default=0, help="also render the PNGs from T threads")
    ap.add_argument("--save", type=Path, help="write the files here (default: a temporary folder)")
    args = ap.parse_args(argv)

    results = load_states(args.run, args.sessions or None)
    turns = sum(len(r["turns"]) for r in results)
    print(f"{len(results)} sessions, {turns} turns ({turns / len(results):.1f} a session), "
          f"{sum(len(r['timeline'].get('episodes') or []) for r in results)} episodes")
    tmp = tempfile.TemporaryDirectory()
    out = args.save or Path(tmp.name)
    fns = parts(out)

    first = {}
    for name, fn in fns.items():  # imports, template compilation, font cache: once a process
        t0 = time.perf_counter()
        fn(results[0])
        first[name] = 1000 * (time.perf_counter() - t0)
    print("first call (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in first.items()))

    passes: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.repeat):
        for name, fn in fns.items():  # interleaved: each pass times every part
            t0 = time.perf_counter()
            for r in results:
                fn(r)
            passes[name].append(1000 * (time.perf_counter() - t0) / len(results))
    print(f"ms per session over {args.repeat} passes: best / median (all passes)")
    for name, ms in passes.items():
        print(f"  {name:<10} {min(ms):7.1f} / {statistics.median(ms):7.1f}   ({', '.join(f'{m:.1f}' for m in ms)})")
    print(f"  {'total':<10} {sum(min(ms) for ms in passes.values()):7.1f}")

    if args.threads:
        from pipeline.report.plots import render_png

        seq = [render_png(r["turns"], r["timeline"]) for r in results]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            par = list(pool.map(lambda r: render_png(r["turns"], r["timeline"]), results))
        ms = 1000 * (time.perf_counter() - t0) / len(results)
        print(f"png from {args.threads} threads: {ms:.1f} ms a session (wall), "
              f"bytes equal to sequential: {par == seq}")

    if args.profile:
        from pipeline.report.plots import render_png

        prof = cProfile.Profile()
        prof.enable()
        for r in results:
            render_png(r["turns"], r["timeline"])
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(args.profile)
        print(text.getvalue())
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(args.profile)
        print(text.getvalue())
    tmp.cleanup()


if __name__ == "__main__":
    main()
