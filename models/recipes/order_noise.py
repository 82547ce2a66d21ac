"""How far do the default's figures move when only the training sessions' order changes? (issue 12, a diagnosis)

The default's decision threshold is the median, over the training corpora, of each corpus's
F1-best threshold on out-of-fold scores. The inner folds that give those scores depend on the
order of the training sessions, and some corpora hold few ruptures (Rogers: 18 rupture turns), so
the threshold, and with it the F1 at the model's own threshold on a new corpus, can move with
nothing else changed. Reruns of the same configuration gave HLQC low rupture F1 0.15, 0.30 and
0.34 (stacked_views.py, per_corpus.py, ablation.py, 2026-12-06). This recipe measures that spread
on purpose: the default configuration (``embedding+text``) fitted on each leave-one-corpus-out
split (repeats of test sessions left out, as everywhere) with the training sessions in the
pool's order and in five shuffled orders (seeds 0-4, fixed before the run), scored on the same
test sessions. Per fit it records the threshold, each training corpus's F1-best threshold, the
share of test turns flagged, and the headline figures; per split the range of each. Threshold-free
figures (ROC-AUC, PR-AUC) should barely move; if F1 and kappa at the threshold do, a single
run's F1 says little, and the ranking figures are what to compare candidates by.

``--cv-repeats N`` measures the same with the estimator's inner folds drawn N times and its
out-of-fold scores averaged over the draws (``RuptureCoder(cv_repeats=N)``), which makes the fit
independent of the sessions' order up to the solvers' tolerance; ``--orders K`` fits the first K
orders only (with repeated folds three show whether the order still matters).

Run from the repository root (about 10 minutes on 2 cores with the embedding cache warm):

    python models/recipes/order_noise.py                  # writes models/recipes/results/order_noise.json
    python models/recipes/order_noise.py --cv-repeats 3   # writes .../order_noise_cv_repeats_3.json
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_default as recipe  # noqa: E402
from threshold_transfer import KeepingScores  # noqa: E402

from pipeline.modeling.context import best_threshold  # noqa: E402
from pipeline.modeling.evaluate import collect, score  # noqa: E402

log = logging.getLogger("order_noise")
OUT = recipe.ROOT / "models" / "recipes" / "results" / "order_noise.json"
SEEDS = (None, 0, 1, 2, 3, 4)  # None: the pool's order, as every other recipe fits
MIN_POSITIVES = 5  # as transfer_threshold: corpora with fewer rupture turns take no part


def reorder(train: list, seed: int | None) -> list:
    return list(train) if seed is None else random.Random(seed).sample(train, len(train))


def corpus_thresholds(y: np.ndarray, p: np.ndarray, corpus: np.ndarray) -> dict:
    """Each training corpus's F1-best threshold on the out-of-fold scores (the median of these
    is the model's threshold)."""
    return {str(c): round(best_threshold(y[corpus == c], p[corpus == c]), 3) for c in np.unique(corpus)
            if y[corpus == c].sum() >= MIN_POSITIVES}


def spread(runs: list[dict], key: str) -> dict | None:
    vals = [r[key] for r in runs if r.get(key) is not None]
    if not vals:
        return None
    return {"min": min(vals), "median": round(float(np.median(vals)), 3), "max": max(vals)}


def fit_once(train: list, test: list, seed: int | None, cv_repeats: int = 1) -> dict:
    model = KeepingScores(**recipe.CANDIDATES["embedding+text"], cache_dir=recipe.CACHE,
                          cv_repeats=cv_repeats).fit(reorder(train, seed))
    figures = recipe.headline(score(collect(model, test), intervals=0))  # flagged_rate among them
    return {"seed": seed, "rupture_threshold": round(float(model.rupture_threshold_), 3),
            "corpus_thresholds": corpus_thresholds(*model.kept_["rupture"]),
            "repair_threshold": round(float(model.repair_threshold_), 3), **figures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cv-repeats", type=int, default=1, help="draws of the estimator's inner folds")
    ap.add_argument("--orders", type=int, default=len(SEEDS), help="how many of the six orders to fit")
    args = ap.parse_args()
    out = OUT if args.cv_repeats == 1 else OUT.with_name(f"order_noise_cv_repeats_{args.cv_repeats}.json")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.time()
    pool, refs = recipe.experiment_pool(recipe.ROOT.parent / "shared" / "data")
    results: dict = {"what": __doc__.split("\n")[0], "seeds": list(SEEDS[:args.orders]), "cv_repeats": args.cv_repeats,
                     "splits": {}}
    for name, (train, tests) in recipe.split_sessions(pool, refs).items():
        if name == recipe.REFERENCE_SPLIT:
            continue
        test = [s for sessions in tests.values() for s in sessions]
        runs = []
        for seed in SEEDS[:args.orders]:
            runs.append(fit_once(train, test, seed, args.cv_repeats))
            log.info("%s, seed %s: %s", name, seed, json.dumps(runs[-1]))
        keys = ("rupture_threshold", "flagged_rate", "rupture_f1", "rupture_best_f1", "rupture_roc_auc",
                "rupture_pr_auc", "kappa3", "spearman_ruptures", "repair_threshold", "repair_f1", "repair_pr_auc")
        results["splits"][name] = {"train_sessions": len(train), "test_sessions": len(test), "runs": runs,
                                   "spread": {k: spread(runs, k) for k in keys}}
        out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    results["seconds"] = round(time.time() - t0)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v["spread"] for k, v in results["splits"].items()}, indent=1))


if __name__ == "__main__":
    main()
