"""How many reviewed sessions of a new corpus does it take to set its thresholds? (issue 12)

The default model ranks the turns of an unseen corpus much better than its codes show, because
its decision thresholds do not transfer to a corpus with another rupture rate (see
``threshold_transfer.py``: no label-free rule fixes that reliably). This recipe measures the
rule that uses a few labels instead: a user reviews ``k`` sessions of their corpus (the review
loop), the thresholds become the F1-best ones on those sessions' turns, and the rest of the corpus
is coded with them. The heads are not retrained.

For each held-out corpus of the recipe's two leave-one-corpus-out splits, and for the eight
reference-coded sessions (treated as one corpus), the model of that split is fitted once; then,
for k = 1, 2, 4, 8 and 16 and 50 random draws of k sessions, the thresholds are set on the k
sessions and the rupture-vs-none and repair F1 measured on the corpus's other sessions, against
the model's own thresholds on the same sessions; also with the ``adapt`` command's guard (the
model's threshold kept unless the k sessions hold at least ``MIN_POSITIVES`` positive turns), with
the command's held-out check (kept unless, leaving one of the k sessions out at a time, the
adapted threshold beats the model's on the left-out sessions: ``adapt.held_out_f1``), and with
both. Sessions with no positive turn still count (an F1
on them is undefined; the draw keeps the model's threshold when the k sessions have none).
Writes models/recipes/results/threshold_adapt.json; about 10 minutes on 2 cores with the
embedding cache warm.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_default as recipe  # noqa: E402

from pipeline.modeling.adapt import held_out_f1  # noqa: E402
from pipeline.modeling.context import best_threshold  # noqa: E402
from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.evaluate import collect  # noqa: E402

log = logging.getLogger("threshold_adapt")
OUT = recipe.ROOT / "models" / "recipes" / "results" / "threshold_adapt.json"
KS = (1, 2, 4, 8, 16)
DRAWS = 50
MIN_POSITIVES = 20  # the `adapt` command's default: fewer reviewed positive turns keep the model's threshold


def adapted_threshold(y: np.ndarray, p: np.ndarray, fallback: float) -> float:
    """The F1-best threshold on the reviewed turns; ``fallback`` when they hold no positive."""
    return float(best_threshold(y, p)) if y.any() and not y.all() else fallback


def simulate(y: np.ndarray, p: np.ndarray, sessions: np.ndarray, model_t: float, seed: int = 0) -> dict:
    """F1 on the other sessions with thresholds set on k reviewed ones, k in KS (50 draws)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(sessions)
    out = {"sessions": int(len(ids)), "turns": int(len(y)), "positive_rate": round(float(y.mean()), 3),
           "oracle_f1": round(float(f1_score(y, p >= best_threshold(y, p), zero_division=0)), 3)}
    for k in KS:
        if k >= len(ids):
            continue
        adapted, guarded, shipped, used = [], [], [], 0
        checked, both, passed = [], [], 0
        for _ in range(DRAWS):
            chosen = rng.choice(ids, size=k, replace=False)
            rev = np.isin(sessions, chosen)
            t = adapted_threshold(y[rev], p[rev], model_t)
            enough = int(y[rev].sum()) >= MIN_POSITIVES
            used += enough
            rest_y, rest_p = y[~rev], p[~rev]
            adapted.append(f1_score(rest_y, rest_p >= t, zero_division=0))
            guarded.append(f1_score(rest_y, rest_p >= (t if enough else model_t), zero_division=0))
            shipped.append(f1_score(rest_y, rest_p >= model_t, zero_division=0))
            cv = held_out_f1(y[rev], p[rev], sessions[rev], model_t)
            ok = cv is not None and cv[1] > cv[0]
            passed += ok
            checked.append(f1_score(rest_y, rest_p >= (t if ok else model_t), zero_division=0))
            both.append(f1_score(rest_y, rest_p >= (t if ok and enough else model_t), zero_division=0))
        adapted, guarded, shipped = np.array(adapted), np.array(guarded), np.array(shipped)
        out[f"k={k}"] = {"adapted_f1_mean": round(float(adapted.mean()), 3),
                         "adapted_f1_p10_p90": [round(float(np.percentile(adapted, q)), 3) for q in (10, 90)],
                         "model_threshold_f1_mean": round(float(shipped.mean()), 3),
                         "draws_better": int((adapted > shipped).sum()), "draws_worse": int((adapted < shipped).sum()),
                         f"with_min_{MIN_POSITIVES}_positives_f1_mean": round(float(guarded.mean()), 3),
                         "draws_with_enough_positives": used,
                         "with_held_out_check_f1_mean": round(float(np.mean(checked)), 3),
                         "draws_passing_held_out_check": passed,
                         f"with_held_out_check_and_min_{MIN_POSITIVES}_f1_mean": round(float(np.mean(both)), 3)}
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pool, refs = recipe.experiment_pool(recipe.ROOT.parent / "shared" / "data")
    results = {}
    for name, (train, tests) in recipe.split_sessions(pool, refs).items():
        model = RuptureCoder(**recipe.CANDIDATES["embedding+text"], cache_dir=recipe.CACHE).fit(train)
        results[name] = {"thresholds": {"rupture": round(model.rupture_threshold_, 3),
                                        "repair": round(model.repair_threshold_, 3)}}
        for corpus, sessions in tests.items():
            c = collect(model, sessions)
            results[name][corpus] = {
                "rupture": simulate((np.array(c["c_gold"]) != "none").astype(int), 1 - np.array(c["c_prob"])[:, 0],
                                    np.array(c["c_session"]), model.rupture_threshold_),
                "repair": simulate((np.array(c["t_gold"]) == "repair").astype(int), np.array(c["t_prob"], dtype=float),
                                   np.array(c["t_session"]), model.repair_threshold_)}
            log.info("%s / %s: %s", name, corpus, json.dumps(results[name][corpus]))
        OUT.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
