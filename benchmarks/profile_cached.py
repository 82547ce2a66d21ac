"""Where a run spends its time once the encoder has nothing left to do (issue #15).

Codes the inputs twice in this process with the library runner (``pipeline.run.local``, the
chain `rupture-coder code --runner inline` runs): first cold, which fills a fresh cache folder
(embeddings and the gate's clean verdicts), then again into a fresh output folder with that
cache, under cProfile, with the per-session writes in this process (the runner otherwise hands
them to a writer process, which cProfile does not see). It also times the raw encoder on the same unique texts (the baseline of
`rupture-coder bench`), so the cached run's cost is given as a share of the encoder's time.

    python benchmarks/profile_cached.py ../shared/data/hlqc/hlqc_dev.csv --top 25

Prints: the raw encoder's seconds, the cached run's seconds per step and its total as a share of
the encoder, then the top functions by cumulative time and by own time. ``--save FILE`` keeps
the raw profile (``python -m pstats FILE``). Nothing of the transcripts is printed or saved
except in the run folders, which live in a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--model", default=None)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", default=None, help="write the raw cProfile data here")
    args = parser.parse_args(argv)

    import pipeline.offline  # noqa: F401  (no network, as the CLI)
    from pipeline.modeling.embed import get_embedder
    from pipeline.run import steps as lib
    from pipeline.run.config import RunConfig
    from pipeline.run.bench import embedded_texts, plain_encode
    from pipeline.run.local import code_corpus

    with tempfile.TemporaryDirectory(prefix="rc-profile-") as tmp:
        work = Path(tmp)
        base = RunConfig(out=str(work / "plan"), model=args.model, phi="warn", cache_dir=str(work / "cache"))
        sessions, texts = embedded_texts(args.inputs, work / "plan", args.model)
        unique = list(dict.fromkeys(texts))
        embedder = get_embedder(lib.cached_bundle(args.model, None).model.embedder)
        embedder.encode(["warm-up"])
        start = time.perf_counter()
        plain_encode(embedder, unique)
        encoder = time.perf_counter() - start
        print(f"{len(sessions)} sessions, {len(texts)} turns, {len(unique)} unique texts")
        print(f"raw encoder on the unique texts: {encoder:.2f} s")

        code_corpus(args.inputs, replace(base, out=str(work / "cold")), fresh=True)
        steps: dict[str, float] = {}

        def on_step(name: str, seconds: float) -> None:
            steps[name] = steps.get(name, 0.0) + seconds

        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        # writes in this process (cProfile sees one process); `bench` times the writer process
        code_corpus(args.inputs, replace(base, out=str(work / "cached")), on_step, fresh=True,
                    background_writes=False)
        profiler.disable()
        total = time.perf_counter() - start
    print(f"cached run (under cProfile, which adds its own overhead): {total:.2f} s, "
          f"{100 * total / encoder:.0f} % of the raw encoder")
    print("steps (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
    if args.save:
        profiler.dump_stats(args.save)
    for key in ("cumulative", "tottime"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats(key).print_stats(args.top)
        print(f"\n--- top {args.top} by {key} ---")
        print(buffer.getvalue().split("\n\n", 1)[-1].strip())


if __name__ == "__main__":
    main()
