"""The default model's leave-one-corpus-out figures, each held-out corpus on its own (issue 12).

The model card's second split (train on HLQC, test on AnnoMI, HOPE and Rogers) pools three
corpora whose rupture rates and transcript styles differ. This recipe refits the shipped default
configuration (``embedding+text``, the parameters of ``rupture-default`` 2.0.1) on the recipe's
leave-one-corpus-out splits of the same pool of sessions as ``train_default.py`` and reports the
split's figures and each test corpus's on its own (``leave_one_corpus_out``'s ``by_corpus``):
the same fitted model and thresholds, scored per corpus. The pooled rows reproduce the card's.

Run from the repository root (about 5 minutes on 2 cores, most of it embedding the turns once
into .cache/ when the cache is cold):

    python models/recipes/per_corpus.py   # writes models/recipes/results/per_corpus_default.{json,md}
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default import CACHE, CANDIDATES, LOCO, ROOT, experiment_pool  # noqa: E402

from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.evaluate import leave_one_corpus_out, metrics_markdown  # noqa: E402

log = logging.getLogger("recipe")
DEFAULT = "embedding+text"  # the configuration of rupture-default 2.0.0 / 2.0.1 (its card)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "models" / "recipes" / "results" / "per_corpus_default"),
                    help="path stem of the .json and .md results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.time()
    pool, _ = experiment_pool(Path(args.shared))
    params = dict(CANDIDATES[DEFAULT], cache_dir=CACHE)
    result = leave_one_corpus_out(pool, lambda: RuptureCoder(**params), LOCO)
    result.pop("pooled")
    text = "\n".join(metrics_markdown(f"rupture-default configuration ({DEFAULT}), leave-one-corpus-out: {k}", v)
                     for k, v in result.items())
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"configuration": DEFAULT, "params": CANDIDATES[DEFAULT],
                                                    "sessions_in_pool": len(pool), "splits": result},
                                                   indent=1, default=float) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    log.info("done in %.0f s", time.time() - t0)


if __name__ == "__main__":
    main()
