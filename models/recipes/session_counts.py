"""Session-level rupture counts from probabilities instead of decisions? (issue 12, a diagnosis)

The target "session-level Spearman of rupture counts >= 0.65" compares, over sessions, the gold
count of rupture turns with the model's. The model's count is the number of turns over the
threshold, and the threshold does not transfer between corpora whose rupture rates differ
five-fold. This recipe compares that count with a threshold-free one, the expected count (the
sum of the turns' calibrated rupture probabilities, 1 - p(none)), and the same for repairs, on
the default configuration refitted on the recipe's leave-one-corpus-out splits (each held-out
corpus also on its own) and on the reference check. Both counts are also given per client turn
(rates), which takes session length out.

Run from the repository root (about 10 minutes on 2 cores with a cold embedding cache):

    python models/recipes/session_counts.py   # writes models/recipes/results/session_counts.json
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default import CACHE, CANDIDATES, LOCO, ROOT, experiment_pool  # noqa: E402

from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.evaluate import _keys, collect, merge_collected  # noqa: E402

log = logging.getLogger("session_counts")
OUT = ROOT / "models" / "recipes" / "results" / "session_counts.json"
DEFAULT = "embedding+text"  # the configuration of rupture-default 2.0.x


def _rho(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or not a.std() or not b.std():
        return None
    return round(float(spearmanr(a, b).correlation), 3)


def _per_session(keys: list, gold: np.ndarray, flagged: np.ndarray, expected: np.ndarray) -> dict:
    ids = sorted(set(keys))
    index = np.array([ids.index(k) for k in keys]) if keys else np.zeros(0, dtype=int)
    total = lambda v: np.bincount(index, weights=v, minlength=len(ids))  # noqa: E731
    g, f, e, n = total(gold), total(flagged), total(expected), total(np.ones(len(keys)))
    return {"sessions": len(ids), "counts_flagged": _rho(g, f), "counts_expected": _rho(g, e),
            "rates_flagged": _rho(g / n, f / n), "rates_expected": _rho(g / n, e / n)}


def session_counts(c: dict) -> dict:
    """Spearman over sessions, gold counts against flagged and expected counts (client ruptures,
    therapist repairs) of collected arrays (:func:`pipeline.modeling.evaluate.collect`)."""
    prob = np.array(c["c_prob"], dtype=float).reshape(-1, 3)
    return {"rupture": _per_session(_keys(c, "c"), (np.array(c["c_gold"]) != "none").astype(float),
                                    (np.array(c["c_pred"]) != "none").astype(float), 1 - prob[:, 0]),
            "repair": _per_session(_keys(c, "t"), (np.array(c["t_gold"]) == "repair").astype(float),
                                   (np.array(c["t_pred"]) == "repair").astype(float),
                                   np.array(c["t_prob"], dtype=float))}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pool, ref = experiment_pool(ROOT.parent / "shared" / "data")
    params = dict(CANDIDATES[DEFAULT], cache_dir=CACHE)
    by_corpus: dict[str, list] = {}
    for s in pool:
        by_corpus.setdefault(str(s.meta.get("corpus") or s.source_format), []).append(s)
    out: dict = {}
    for name, (train, test) in LOCO.items():
        model = RuptureCoder(**params).fit([s for c in train for s in by_corpus.get(c, [])])
        parts = {c: collect(model, by_corpus[c]) for c in test if by_corpus.get(c)}
        out[name] = session_counts(merge_collected(list(parts.values())))
        if len(parts) > 1:
            out[name]["by_corpus"] = {c: session_counts(p) for c, p in parts.items()}
        log.info("%s: %s", name, json.dumps(out[name]))
    out["reference check (trained on all pool sessions)"] = session_counts(collect(RuptureCoder(**params).fit(pool), ref))
    OUT.write_text(json.dumps({"configuration": DEFAULT, "params": CANDIDATES[DEFAULT], "splits": out},
                              indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
