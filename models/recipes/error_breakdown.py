"""Which ruptures the default misses on corpora it never saw (issue 12, a diagnosis).

The default configuration is refitted on the recipe's leave-one-corpus-out splits and on the
whole pool for the reference check (the same splits and fits as ``session_counts.py``). For the
held-out client turns it reports how the rupture turns are found, broken down by the gold family
(withdrawal, confrontation), by the gold marker, and by the turn's length in words:

- recall at the model's own threshold (what a user gets);
- recall at the gold rate: the same scores with the threshold set so that as many turns are
  flagged as the gold has ruptures (the ranking alone, with the threshold's transfer taken out);
- ROC-AUC within the group where it has both classes (the family rows compare that family's
  ruptures with the turns coded none).

Only counts and figures are written, no transcript text.

Run from the repository root (about 5 minutes on 2 cores with a warm embedding cache):

    python models/recipes/error_breakdown.py   # writes models/recipes/results/error_breakdown.json
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default import CACHE, CANDIDATES, ROOT, experiment_pool, split_sessions  # noqa: E402

from pipeline.codebook import load_codebook  # noqa: E402
from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.evaluate import reference_codes  # noqa: E402

log = logging.getLogger("error_breakdown")
OUT = ROOT / "models" / "recipes" / "results" / "error_breakdown.json"
DEFAULT = "embedding+text"  # the configuration of rupture-default 2.0.x
LENGTHS = ((0, 3), (3, 8), (8, 20), (20, 60), (60, None))  # words, lower bound included


def turn_rows(model: RuptureCoder, sessions: list) -> list[dict]:
    """One row per client turn with a reference code: the gold code and markers, the model's
    rupture score (1 - p(none)) and the turn's length in words (no text)."""
    book = load_codebook()
    rows = []
    for session, scores in zip(sessions, model.predict_proba(sessions)):
        gold = reference_codes(session, book)
        for d in model.decide(session, scores):
            if d.rupture is None or gold["rupture"][d.turn] is None:
                continue
            rows.append({"gold": gold["rupture"][d.turn], "markers": sorted(gold["markers"][d.turn]),
                         "score": 1 - d.rupture_scores["none"], "words": len(session.turns[d.turn].text.split())})
    return rows


def _group(y: np.ndarray, score: np.ndarray, at_threshold: np.ndarray, at_rate: np.ndarray, mask: np.ndarray) -> dict:
    pos = y & mask
    out = {"turns": int(mask.sum()), "ruptures": int(pos.sum())}
    if pos.sum():
        out["recall_at_threshold"] = round(float((at_threshold & pos).sum() / pos.sum()), 3)
        out["recall_at_gold_rate"] = round(float((at_rate & pos).sum() / pos.sum()), 3)
    if 0 < y[mask].sum() < mask.sum():
        out["roc_auc"] = round(float(roc_auc_score(y[mask], score[mask])), 3)
    return out


def breakdown(rows: list[dict], threshold: float) -> dict:
    """Recall at ``threshold`` and at the gold rate, and ROC-AUC, overall and by gold family,
    gold marker and turn length (see the module's docstring)."""
    if not rows:
        return {"turns": 0}
    y = np.array([r["gold"] != "none" for r in rows])
    score = np.array([r["score"] for r in rows], dtype=float)
    words = np.array([r["words"] for r in rows])
    at_threshold = score >= threshold
    k = int(y.sum())
    at_rate = score >= np.sort(score)[::-1][k - 1] if k else np.zeros(len(y), dtype=bool)
    none = ~y
    out = {"threshold": round(float(threshold), 3), "gold_rate": round(float(y.mean()), 3),
           "flagged_rate": round(float(at_threshold.mean()), 3),
           "all": _group(y, score, at_threshold, at_rate, np.ones(len(y), dtype=bool)),
           "family": {}, "marker": {}, "words": {}}
    for family in sorted({r["gold"] for r in rows} - {"none"}):
        mask = np.array([r["gold"] == family for r in rows]) | none
        out["family"][family] = _group(y, score, at_threshold, at_rate, mask)
    for marker in sorted({m for r in rows for m in r["markers"]}):
        mask = np.array([marker in r["markers"] for r in rows])
        out["marker"][marker] = _group(y, score, at_threshold, at_rate, mask)
    for low, high in LENGTHS:
        mask = (words >= low) & (words < (high if high is not None else np.inf))
        if mask.any():
            out["words"][f"{low}-{high - 1}" if high is not None else f"{low}+"] = _group(
                y, score, at_threshold, at_rate, mask)
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pool, ref = experiment_pool(ROOT.parent / "shared" / "data")
    params = dict(CANDIDATES[DEFAULT], cache_dir=CACHE)
    out: dict = {"configuration": DEFAULT, "params": CANDIDATES[DEFAULT], "pool_sessions": len(pool), "splits": {}}
    for name, (train, tests) in split_sessions(pool, ref).items():
        model = RuptureCoder(**params).fit(train)
        rows = turn_rows(model, [s for sessions in tests.values() for s in sessions])
        out["splits"][name] = breakdown(rows, model.rupture_threshold_)
        log.info("%s: %s", name, json.dumps(out["splits"][name]["all"]))
    OUT.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
