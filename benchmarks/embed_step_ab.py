"""The embed step against the raw encoder, with the per-session writes in a second process and in
this one (issue #15).

In a cold run of the library runner (`--runner inline`, `bench`'s in-process rows) the writer
process writes the last chunk's timelines, PNGs and pages while this process encodes the next
chunk, so on 2 cores the writes share the cores with the encoder and the time inside the encoder
grows, while the run as a whole does not. This script tells the two apart: it alternates cold
runs with the writer process (``background_writes=True``, the default) and without it (every
chunk written in this process), each paired with a raw encoder pass over the same unique texts
just before it, and prints one JSON line per run:

    python benchmarks/embed_step_ab.py ../shared/data/hlqc --pairs 2

``ratio``: the raw pass's seconds over the run's (the run's throughput as a share of the
encoder's); ``embed`` and ``inside``: the embed step, and the time inside the encoder, over the
raw pass; ``write_wait``: seconds the run waited for writes (in this process: all of them).
Nothing of the transcripts is printed; run folders and caches live in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--model", default=None)
    parser.add_argument("--pairs", type=int, default=2, help="runs with and without the writer process, each")
    args = parser.parse_args(argv)

    import pipeline.offline  # noqa: F401  (no network, as the CLI)
    from pipeline.modeling.embed import get_embedder
    from pipeline.run import bench
    from pipeline.run import steps as lib

    out = []
    with tempfile.TemporaryDirectory(prefix="rc-embed-ab-") as tmp:
        work = Path(tmp)
        base = lib.RunConfig(out=str(work / "plan"), model=args.model, phi="warn")
        unique = list(dict.fromkeys(bench.embedded_texts(args.inputs, work / "plan", args.model)[1]))
        embedder = get_embedder(lib.cached_bundle(args.model, None).model.embedder)
        embedder.encode(["warm-up"])
        original = bench.code_corpus
        try:
            for i in range(2 * args.pairs):
                writer = i % 2 == 0
                start = time.perf_counter()
                bench.plain_encode(embedder, unique)
                raw = time.perf_counter() - start

                def code_corpus(*a, _writer=writer, **k):
                    return original(*a, **{**k, "background_writes": _writer})

                bench.code_corpus = code_corpus  # library_run's runner, with or without the writer
                r = bench.library_run(args.inputs, replace(base, out=str(work / f"run-{i}"),
                                                           cache_dir=str(work / f"cache-{i}")))
                row = {"writer_process": writer, "raw_encoder_s": round(raw, 2), "run_s": round(r["seconds"], 2),
                       "ratio": round(raw / r["seconds"], 3), "embed": round(r["steps"]["embed"] / raw, 3),
                       "inside": round(r["embed_in_encoder"] / raw, 3),
                       "write_wait": round(r["steps"]["write_sessions"], 2)}
                print(json.dumps(row), flush=True)
                out.append(row)
        finally:
            bench.code_corpus = original
    return out


if __name__ == "__main__":
    main()
