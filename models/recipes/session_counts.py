"""Session-level rupture counts from probabilities instead of decisions? (issue 12, a diagnosis)

The target "session-level Spearman of rupture counts >= 0.65" compares, over sessions, the gold
count of rupture turns with the model's. The model's count is the number of turns over the
threshold, and the threshold does not transfer between corpora whose rupture rates differ
five-fold. This recipe compares that count with a threshold-free one, the expected count (the
sum of the turns' calibrated rupture probabilities, 1 - p(none)), and the same for repairs, on
the default configuration refitted on the recipe's leave-one-corpus-out splits (each held-out
corpus also on its own) and on the reference check.

Run from the repository root (about 10 minutes on 2 cores with a cold embedding cache):

    python models/recipes/session_counts.py   # writes models/recipes/results/session_counts.json
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default import CACHE, CANDIDATES, ROOT, experiment_pool, split_sessions  # noqa: E402

from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.evaluate import _keys, _session_spearman, collect, merge_collected  # noqa: E402

log = logging.getLogger("session_counts")
OUT = ROOT / "models" / "recipes" / "results" / "session_counts.json"
DEFAULT = "embedding+text"  # the configuration of rupture-default 2.0.x


def _rho(keys: list, gold: np.ndarray, count: np.ndarray) -> float | None:
    rho = _session_spearman(keys, gold, count)["spearman"]
    return None if rho is None else round(rho, 3)


def session_counts(c: dict) -> dict:
    """Spearman over sessions, gold counts against flagged and expected counts (client ruptures,
    therapist repairs) of collected arrays (:func:`pipeline.modeling.evaluate.collect`)."""
    prob = np.array(c["c_prob"], dtype=float).reshape(-1, 3)
    c_keys, c_gold = _keys(c, "c"), (np.array(c["c_gold"]) != "none").astype(float)
    t_keys, t_gold = _keys(c, "t"), (np.array(c["t_gold"]) == "repair").astype(float)
    return {"rupture": {"sessions": len(set(c_keys)),
                        "counts_flagged": _rho(c_keys, c_gold, (np.array(c["c_pred"]) != "none").astype(float)),
                        "counts_expected": _rho(c_keys, c_gold, 1 - prob[:, 0])},
            "repair": {"sessions": len(set(t_keys)),
                       "counts_flagged": _rho(t_keys, t_gold, (np.array(c["t_pred"]) == "repair").astype(float)),
                       "counts_expected": _rho(t_keys, t_gold, np.array(c["t_prob"], dtype=float))}}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pool, ref = experiment_pool(ROOT.parent / "shared" / "data")
    params = dict(CANDIDATES[DEFAULT], cache_dir=CACHE)
    out: dict = {}
    for name, (train, tests) in split_sessions(pool, ref).items():
        model = RuptureCoder(**params).fit(train)
        parts = {c: collect(model, sessions) for c, sessions in tests.items()}
        out[name] = session_counts(merge_collected(list(parts.values())))
        if len(parts) > 1:
            out[name]["by_corpus"] = {c: session_counts(p) for c, p in parts.items()}
        log.info("%s: %s", name, json.dumps(out[name]))
    OUT.write_text(json.dumps({"configuration": DEFAULT, "params": CANDIDATES[DEFAULT], "splits": out},
                              indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
