"""A repair only after a coded rupture? (issue 12, a diagnosis, not shipped)

The reference codebook codes a repair attempt only when a client rupture occurred in roughly the
three preceding turns, and the team's codes follow it (171 of the pool's 186 gold repairs have a
gold rupture in the three turns before). The default decides each therapist turn on its own
threshold; its repair head sees the preceding client turns' rupture probabilities but may flag a
repair where it coded no rupture. This recipe scores the default configuration, refitted on the
recipe's leave-one-corpus-out splits (each held-out corpus also on its own) and on the reference
check, as it decides and with the codebook's rule applied to its decisions: a repair is kept only
when the model coded a rupture in one of the three turns before it (the rule was fixed from the
codebook before the run; nothing is tuned).

Run from the repository root (about 5 minutes on 2 cores with the embedding cache warm):

    python models/recipes/repair_gate.py   # writes models/recipes/results/repair_gate.json
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_default as recipe  # noqa: E402

from pipeline.codebook import load_codebook  # noqa: E402
from pipeline.modeling.estimator import RuptureCoder, gold_arrays  # noqa: E402
from pipeline.modeling.evaluate import collect, merge_collected, score  # noqa: E402

log = logging.getLogger("repair_gate")
OUT = recipe.ROOT / "models" / "recipes" / "results" / "repair_gate.json"
WINDOW = 3  # turns before a repair in which the codebook looks for the rupture


class GatedCoder(RuptureCoder):
    """The default estimator; with ``gate`` on, a repair without a coded rupture in the
    ``WINDOW`` turns before it is decided ``none``."""

    gate = False

    def decide(self, session, scores):
        out = super().decide(session, scores)
        if self.gate:
            for k, d in enumerate(out):
                if d.repair == "repair" and not any(p.rupture not in (None, "none") for p in out[max(0, k - WINDOW):k]):
                    out[k] = dataclasses.replace(d, repair="none", strategies=())
        return out


def gold_repairs_after_ruptures(sessions: list) -> tuple[int, int]:
    """(gold repairs, of which with a gold rupture in the ``WINDOW`` turns before)."""
    book, n, after = load_codebook(), 0, 0
    for s in sessions:
        gold = gold_arrays(s, book)
        for i, code in enumerate(gold["repair"]):
            if code == "repair":
                n += 1
                after += any(r not in (None, "none") for r in gold["rupture"][max(0, i - WINDOW):i])
    return n, after


def repair_figures(collected: dict) -> dict:
    scored = score(collected)
    repair = scored["therapist"]["repair"]
    return {**{k: round(repair[k], 3) for k in ("precision", "recall", "f1", "flagged_rate", "gold_rate")},
            "spearman_counts": (scored["therapist"]["session_counts"] or {}).get("spearman")}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pool, ref = recipe.experiment_pool(recipe.ROOT.parent / "shared" / "data")
    n, after = gold_repairs_after_ruptures(pool)
    results: dict = {"gold_repairs": n, "gold_repairs_after_a_gold_rupture": after, "window": WINDOW, "splits": {}}
    for name, (train, tests) in recipe.split_sessions(pool, ref).items():
        model = GatedCoder(**recipe.CANDIDATES["embedding+text"], cache_dir=recipe.CACHE).fit(train)
        split: dict = {}
        for gate in (False, True):
            model.gate = gate
            parts = {c: collect(model, sessions) for c, sessions in tests.items()}
            rule = "repair after a coded rupture" if gate else "as decided (2.0.x)"
            split[rule] = repair_figures(merge_collected(list(parts.values())))
            if len(parts) > 1:
                split[rule]["by_corpus"] = {c: repair_figures(p) for c, p in parts.items()}
        results["splits"][name] = split
        log.info("%s: %s", name, json.dumps(split))
    OUT.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
