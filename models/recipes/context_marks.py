"""Can the text view tell a turn's words from its context's? (issue 12, candidates)

The default's text views (rupture and repair) read each turn as an exchange text: the two turns
before it, each led by a role letter (``T``/``C``), ``||`` between them and ``>>`` before the
turn (``pipeline.modeling.context.exchange_text``). The view's tokenizer (scikit-learn's
default, words of two or more word characters) drops the role letters, the separators and the
word "i", so the view reads the three turns as one bag of words and bigrams: a therapist's "you
should" counts as the client's would, and nothing says which words are the turn's own. Found on
2026-12-07 by reading the tokens; the shipped bundles (2.0.x) were trained and are applied that
way, and they keep it.

Two candidates give the context's words their speaker's mark, spelled so that the tokenizer
keeps it (``t_should``, ``c_fine``; the turn's own words stay as they are):

- ``context marked``: the context's words marked only;
- ``context pooled and marked``: the context's words as they are (as the default reads them)
  and once more marked, so that a word's weight can be shared by every position or be its
  speaker's own.

The rule and the confirmation, fixed (2026-12-07) before this recipe's first run: a candidate
passes the rule if its selection score (mean leave-one-corpus-out rupture and repair PR-AUC) is
higher than the default's in every one of five orders (the pool's own and seeds 0-3) and higher
by more than 0.0065 at the median, the spread of the default's own score over six orders
(``order_noise.json``). A candidate that passes is then fitted in three fresh orders (seeds 7, 8
and 9; ``--orders 7,8,9``) and is confirmed only by the same test on them. Only a confirmed
candidate may become the default. The reference check (pool's order) is reported, not used.

Result of that run (2026-12-07): ``context marked`` is ahead in every order but by 0.0043 at the
median, ``context pooled and marked`` behind in every order; neither passes. Per view, the marks
lowered the rupture view's ranking on HLQC low and raised the repair view's. So a third
candidate was added after that run, from its figures: ``repair view marked`` (the repair view
with the context marked, the rupture view as the default's; ``RuptureCoder(repair_marks=True)``).
Because it was drawn from the rule's five orders, it is judged on five fresh orders only (seeds
7-11, ``--orders 7,8,9,10,11``), by the same test (ahead in each, by more than 0.0065 at the
median), fixed before they were run. It passed (gains +0.0135, +0.0084, +0.0169, +0.0022,
+0.0048) and became ``rupture-default 2.1.0``. The fresh orders change the training folds, not
the test sessions it was drawn from; the reference check, never used to choose, moved the same
way (docs/models.md, "Which words are the turn's own").

The fast profile, fixed (2026-12-07) before its first run: ``repair view marked`` with the fast
profile's encoder (``--embedder minilm-l6-onnx-int8.v2``; results in
``context_marks_minilm-l6-onnx-int8.v2.json``) against the fast profile's configuration
(``rupture-fast 2.0.0``: the same ``embedding+text`` on that encoder), in the five orders that
judged 2.1.0 (seeds 7-11), by the same test: ahead in each order and by more than 0.0065 at the
median. No fit of either with this encoder had been run. If it passes, it becomes
``rupture-fast 2.1.0``. Its limit is 2.1.0's: the candidate was drawn from these test splits
(with the other encoder). Result (2026-12-07, 29 minutes beside the test suite): ahead in every
order, gains +0.0074, +0.0041, +0.0046, +0.0089, +0.0047, median +0.0047: **it fails**, and the
fast profile stays 2.0.0. Per split, the same pattern as with the default's encoder: HLQC low
repair PR-AUC 0.111-0.119 -> 0.139-0.157 in every order, repair F1 0.097-0.139 -> 0.109-0.222;
AnnoMI, HOPE and Rogers repair PR-AUC 0.199-0.204 -> 0.191-0.196, lower in every order; the
rupture figures unchanged. (No reference check: it is fitted in the pool's order only.)

Run from the repository root (about 20 minutes for the rule's orders on 2 cores with the
embedding cache warm; an interrupted run keeps what it measured):

    python models/recipes/context_marks.py            # writes models/recipes/results/context_marks.json
    python models/recipes/context_marks.py --orders 7,8,9   # the confirmation, for a candidate that passed
    python models/recipes/context_marks.py --orders 7,8,9,10,11 --candidates "repair view marked"
    python models/recipes/context_marks.py --orders 7,8,9,10,11 --candidates "repair view marked" \
        --embedder minilm-l6-onnx-int8.v2                     # the fast profile
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_reply import fit_in_orders, verdict  # noqa: E402
from train_default import CANDIDATES, LOCO, ROOT, experiment_pool  # noqa: E402

from pipeline.modeling.context import SPEAKER_MARK, TOKEN  # noqa: E402
from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.features import turn_text  # noqa: E402

log = logging.getLogger("context_marks")
OUT = ROOT / "models" / "recipes" / "results" / "context_marks.json"
DEFAULT = "embedding+text"  # the configuration of rupture-default 2.0.x
MARKED, BOTH, REPAIR = "context marked", "context pooled and marked", "repair view marked"
MAKERS = {**{name: dict(CANDIDATES[DEFAULT]) for name in (DEFAULT, MARKED, BOTH)},
          REPAIR: dict(CANDIDATES[DEFAULT], repair_marks=True)}
RULE_ORDERS = ("pool", "seed 0", "seed 1", "seed 2", "seed 3")
FRESH = ("seed 7", "seed 8", "seed 9")
# the orders each candidate's rule and confirmation read (REPAIR was drawn from RULE_ORDERS' results)
JUDGED = {MARKED: {"rule": RULE_ORDERS, "confirmation": FRESH}, BOTH: {"rule": RULE_ORDERS, "confirmation": FRESH},
          REPAIR: {"rule": ("seed 7", "seed 8", "seed 9", "seed 10", "seed 11")}}


def marked_exchange(session, index: int, pooled: bool, before: int = 2) -> str:
    """The exchange text of turn ``index`` with each context word led by its speaker's mark
    (``t_``, ``c_``; other speakers ``o_``) and, with ``pooled``, also as it is. Without
    ``pooled`` it is the library's ``exchange_text(..., marks=True)`` (tested), which
    ``RuptureCoder(repair_marks=True)``, the ``repair view marked`` candidate, uses; the first
    runs of that candidate used a recipe subclass with this function in its place."""
    parts = []
    for turn in session.turns[max(0, index - before):index]:
        words = TOKEN.findall(turn_text(turn).lower())
        mark = SPEAKER_MARK.get(turn.speaker_role, "o_")
        parts.append(" ".join([mark + w for w in words] + (words if pooled else [])))
    return " || ".join(parts) + " >> " + turn_text(session.turns[index]).lower()


class MarkedContext(RuptureCoder):
    """The default configuration with the context's words marked in both text views (no reply)."""

    pooled = False

    def _view_texts(self, session, turns, reply, marks=False):
        return [marked_exchange(session, i, self.pooled) for i in turns]


class PooledAndMarkedContext(MarkedContext):
    pooled = True


CLASSES = {MARKED: MarkedContext, BOTH: PooledAndMarkedContext}  # REPAIR is the library's option


def verdicts(result: dict, judged: dict = JUDGED) -> dict:
    """The rule's verdict per candidate and, where it has one, the confirmation's (``JUDGED``)."""
    out = {}
    for name in judged:
        for kind, orders in judged[name].items():
            pairs = [(result["orders"][o][DEFAULT]["selection"], result["orders"][o][name]["selection"])
                     for o in orders if name in result["orders"].get(o, {}) and DEFAULT in result["orders"][o]]
            if pairs:
                out.setdefault(name, {})[kind] = dict(verdict(*zip(*pairs)), complete=len(pairs) == len(orders))
    return out


def judge_in_orders(out: Path, names: list[str], makers: dict, classes: dict, orders: list[str], pool: list,
                    ref: list, judged: dict, setup: dict, t0: float) -> dict:
    """Fit ``names`` in ``orders`` (:func:`text_reply.fit_in_orders`, adding to the results
    already in ``out``), then write the verdicts of ``judged`` and print them."""
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update({"pool_sessions": len(pool), "loco": LOCO, "params": makers, **setup})
    fit_in_orders(result, names, makers, classes, orders, pool, ref, out)
    result["verdicts"] = verdicts(result, judged)
    result["seconds"] = round(time.time() - t0)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result["verdicts"], indent=1))
    return result


def rule_main(doc: str, out: Path, names: list[str], makers: dict, classes: dict, orders: str, judged: dict,
              setup: dict) -> dict:
    """The command line of a recipe that only judges candidates by the rule (``--shared``,
    ``--orders`` defaulting to ``orders``): loads the pool and runs :func:`judge_in_orders`."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--orders", default=orders,
                    help="comma-separated orders: a shuffle's seed, or pool (the reference check)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.time()
    pool, ref = experiment_pool(Path(args.shared))
    return judge_in_orders(out, names, makers, classes, args.orders.split(","), pool, ref, judged, setup, t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--orders", default="pool,0,1,2,3", help="comma-separated orders: pool, or a shuffle's seed")
    ap.add_argument("--candidates", default=",".join(CLASSES), help="comma-separated candidates (the default is always fitted)")
    ap.add_argument("--embedder", default=None,
                    help="another encoder for every candidate (the fast profile: minilm-l6-onnx-int8.v2); "
                         "results in their own file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.time()
    names = [DEFAULT] + [n for n in args.candidates.split(",") if n and n != DEFAULT]
    if set(names) - set(MAKERS):
        ap.error(f"unknown candidates: {', '.join(sorted(set(names) - set(MAKERS)))} (known: {', '.join(MAKERS)})")
    makers, out, judged = MAKERS, OUT, JUDGED
    if args.embedder:  # the fast profile's test (the docstring): the repair candidate in seeds 7-11
        makers = {name: dict(p, embedder=args.embedder) for name, p in MAKERS.items()}
        out = OUT.with_name(f"context_marks_{args.embedder}.json")
        judged = {REPAIR: JUDGED[REPAIR]}
    pool, ref = experiment_pool(Path(args.shared))
    judge_in_orders(out, names, makers, CLASSES, args.orders.split(","), pool, ref, judged, {}, t0)


if __name__ == "__main__":
    main()
