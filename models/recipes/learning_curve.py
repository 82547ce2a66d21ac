"""How much would more labelled sessions help? A learning curve (issue 12, a diagnosis, not shipped)

Every model-side lever tried since 2.0.0 tied on ranking (docs/models.md). The issue's own reading
is that "the labels and their amount cap everything". This recipe measures the second half of
that claim on this team's data: the shipped default configuration (``embedding+text``, the
parameters of ``rupture-default`` 2.0.1) refitted on a fraction of the training sessions of each
evaluation split and scored on the same, full test sessions:

- the two leave-one-corpus-out splits of ``train_default.py`` (the corpus that is tested is never
  in training, at any fraction), and
- the reference check (trained on the pool, scored on the eight reference-coded sessions with the
  reference coder's codes).

and, closer to the shipped model's situation (its training holds low-quality sessions of the
kind it is asked to code), an **in-kind** curve: HLQC low split in two halves, each half tested
with the other corpora's sessions in training plus none, 1/8, 1/4, 1/2 or all of the *other*
half's HLQC low sessions. The shared data holds the same recordings more than once (within HLQC
low, and between HLQC low and high: ``pipeline.modeling.repeats``), so every group of repeats
stays in one half, and sessions of other corpora that repeat a test session are left out of its
training (as they are, since this recipe, in every evaluation split: ``leave_one_corpus_out``
and ``train_default.split_sessions``). For these splits ``train_sessions`` counts the HLQC low sessions added.

For the evaluation splits, the fractions are 1/8, 1/4, 1/2 and all of the training sessions; each fraction below 1 is drawn
``--seeds`` times (different sessions), stratified by corpus, so that each fraction keeps the
training corpora's mix (at least one session of each). The figures are the card's headline
figures. From them the recipe fits, per split and figure, the least-squares line of the figure
against log2 of the number of training sessions: its slope is the gain per doubling of labelled
data *of the same kinds*. Extrapolating it is a rough guide, not a promise: curves flatten, and
the maintainers' unseen sessions are of a kind (clean transcripts of low-quality MI) that is not
in this data at all. Nothing here is tuned: the configuration and its parameters are the shipped
ones, and the fractions were fixed before the run.

Run from the repository root (about 15 minutes on 2 cores with the embedding cache warm; ``--part``
runs one of the two parts):

    python models/recipes/learning_curve.py   # writes models/recipes/results/learning_curve.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_default as recipe  # noqa: E402

from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.evaluate import collect, merge_collected, score  # noqa: E402
from pipeline.modeling.repeats import recording_halves, without_repeats  # noqa: E402

log = logging.getLogger("learning_curve")
OUT = recipe.ROOT / "models" / "recipes" / "results" / "learning_curve.json"
DEFAULT = "embedding+text"
FRACTIONS = (0.125, 0.25, 0.5, 1.0)
IN_KIND = (0.0, 0.125, 0.25, 0.5, 1.0)  # fractions of the other half's HLQC low sessions
FIGURES = ("rupture_pr_auc", "rupture_roc_auc", "rupture_best_f1", "rupture_f1", "kappa3",
           "spearman_ruptures", "repair_pr_auc", "repair_f1")


def subsample(train: list, fraction: float, seed: int) -> list:
    """``fraction`` of ``train``'s sessions, drawn within each corpus (at least one of each), in
    the pool's order; all of them for ``fraction >= 1``."""
    if fraction >= 1:
        return list(train)
    by: dict = {}
    for s in train:
        by.setdefault(s.meta["corpus"], []).append(s)
    rng = random.Random(seed)
    keep = set()
    for corpus in sorted(by):
        sessions = sorted(by[corpus], key=lambda s: (s.source_format, s.session_id))
        k = max(1, round(fraction * len(sessions)))
        keep.update(id(s) for s in rng.sample(sessions, k))
    return [s for s in train if id(s) in keep]


def in_kind_splits(pool: list) -> dict:
    """``{half: (other sessions, the other half's HLQC low sessions, test sessions, other
    sessions left out)}``: HLQC low split in two halves with every group of repeated recordings
    (:mod:`pipeline.modeling.repeats`) in one half; the training sessions of other corpora leave
    out the repeats of the test half."""
    low = [s for s in pool if s.meta["corpus"] == "hlqc_low"]
    rest = [s for s in pool if s.meta["corpus"] != "hlqc_low"]
    half = recording_halves(low)
    out = {}
    for k in (0, 1):
        test = [s for s, h in zip(low, half) if h == k]
        other, left_out = without_repeats(rest, test)
        out[f"HLQC low, half {k + 1}"] = (other, [s for s, h in zip(low, half) if h != k], test, left_out)
    return out


def slope_per_doubling(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of the figure against log2(training sessions), over the points with
    at least one session."""
    pts = [(math.log2(n), y) for n, y in points if n > 0 and y is not None and not math.isnan(y)]
    if len({x for x, _ in pts}) < 2:
        return None
    mx, my = statistics.fmean(x for x, _ in pts), statistics.fmean(y for _, y in pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def summarise(runs: list[dict]) -> dict:
    """Per fraction: the mean and spread of each figure over the draws; per figure: the slope
    per doubling over every run."""
    by_fraction: dict = {}
    for r in runs:
        by_fraction.setdefault(r["fraction"], []).append(r)
    table = {}
    for fraction, rs in sorted(by_fraction.items()):
        row = {"train_sessions": round(statistics.fmean(r["train_sessions"] for r in rs), 1), "draws": len(rs)}
        for f in FIGURES:
            vals = [r["figures"][f] for r in rs if r["figures"].get(f) is not None]
            row[f] = round(statistics.fmean(vals), 3) if vals else None
            row[f + "_sd"] = round(statistics.stdev(vals), 3) if len(vals) > 1 else None
        table[str(fraction)] = row
    slopes = {f: slope_per_doubling([(r["train_sessions"], r["figures"].get(f)) for r in runs]) for f in FIGURES}
    return {"by_fraction": table, "slope_per_doubling": {f: (round(v, 4) if v is not None else None) for f, v in slopes.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=str(recipe.ROOT.parent / "shared" / "data"))
    ap.add_argument("--seeds", type=int, default=3, help="draws per fraction below 1")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--part", choices=("loco", "in-kind", "all"), default="all",
                    help="loco: the evaluation splits; in-kind: HLQC low halves, adding the other half's sessions")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.time()
    pool, ref = recipe.experiment_pool(Path(args.shared))
    params = dict(recipe.CANDIDATES[DEFAULT], cache_dir=recipe.CACHE)
    out = Path(args.out)
    result: dict = {"configuration": DEFAULT, "params": recipe.CANDIDATES[DEFAULT], "pool_sessions": len(pool),
                    "fractions": list(FRACTIONS), "seeds": args.seeds, "splits": {}}
    if out.exists():
        result = {**json.loads(out.read_text(encoding="utf-8")), **{k: v for k, v in result.items() if k != "splits"}}
        result.setdefault("splits", {})
    loco = recipe.split_sessions(pool, ref) if args.part != "in-kind" else {}
    for name, (train, tests) in loco.items():
        runs = []
        for fraction in FRACTIONS:
            for seed in range(1 if fraction >= 1 else args.seeds):
                t1 = time.time()
                part = subsample(train, fraction, seed)
                model = RuptureCoder(**params).fit(part)
                collected = merge_collected([collect(model, sessions) for sessions in tests.values()])
                runs.append({"fraction": fraction, "seed": seed, "train_sessions": len(part),
                             "figures": recipe.headline(score(collected)), "seconds": round(time.time() - t1)})
                log.info("%s, fraction %s, draw %d: %d sessions, %s", name, fraction, seed, len(part),
                         json.dumps(runs[-1]["figures"]))
        result["splits"][name] = {"train_sessions": len(train), "runs": runs, **summarise(runs)}
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")  # kept if interrupted
    for name, (other, more, test, left_out) in (in_kind_splits(pool) if args.part != "loco" else {}).items():
        runs = []
        for fraction in IN_KIND:
            for seed in range(1 if fraction in (0.0, 1.0) else args.seeds):
                t1 = time.time()
                added = subsample(more, fraction, seed) if fraction > 0 else []
                model = RuptureCoder(**params).fit(other + added)
                runs.append({"fraction": fraction, "seed": seed, "train_sessions": len(added),
                             "figures": recipe.headline(score(collect(model, test))), "seconds": round(time.time() - t1)})
                log.info("%s, %d HLQC low sessions added: %s", name, len(added), json.dumps(runs[-1]["figures"]))
        result["splits"][name] = {"in_kind": True, "other_sessions": len(other), "other_left_out_as_near_duplicates": left_out,
                                  "hlqc_low_available": len(more), "test_sessions": len(test), "runs": runs,
                                  **summarise(runs)}  # the slope over the runs that add some
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    result[f"seconds_{args.part}"] = round(time.time() - t0)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    log.info("done in %.0f s", time.time() - t0)


if __name__ == "__main__":
    main()
