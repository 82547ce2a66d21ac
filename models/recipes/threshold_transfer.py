"""Do decision thresholds transfer to a corpus with another rupture rate? (issue 12, a diagnosis)

The default model ranks turns on unseen corpora far better than its codes show: on the HLQC
low-quality sessions (22 % of client turns are ruptures; the training corpora of that split have
3-4 %) the F1 at the best threshold for those sessions is about 0.49, at the model's own threshold
0.21. This recipe measures decision rules that could close that gap without seeing the test
corpus's labels, all applied to the same fitted models' scores:

- ``pooled``: the F1-best threshold on the pooled out-of-fold scores of the training sessions
  (the 1.0.0 rule);
- ``corpus median``: the median of each training corpus's F1-best threshold (the 2.0.x rule);
- ``session prior k``: per session, the class prior is re-estimated from the session's own scores
  by EM (Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new a
  priori probabilities"), with a Beta prior worth ``k`` turns of the training rate, and the
  scores are adjusted to it; the threshold is the corpus median on the training sessions'
  adjusted out-of-fold scores. Self-contained per session (no other session changes a code);
- ``session centred a``: the logit minus ``a`` times the session's mean logit, same threshold rule;
- ``oracle``: the best threshold for the test sessions themselves (not attainable: the ceiling).

Splits: the recipe's two leave-one-corpus-out splits and the reference check (trained on all
pool sessions, scored on the eight reference-coded sessions with the reference coder's codes).
Run from the repository root (about 8 minutes on 2 cores with the embedding cache warm):

    python models/recipes/threshold_transfer.py   # writes models/recipes/results/threshold_transfer.json

The models are the default configuration (``embedding+text``). The recipe subclasses the
estimator only to keep the out-of-fold scores it computes anyway while fitting.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from scipy.special import expit, logit
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_default as recipe  # noqa: E402

from pipeline.modeling.context import best_threshold, transfer_threshold  # noqa: E402
from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.evaluate import collect  # noqa: E402

log = logging.getLogger("threshold_transfer")
OUT = recipe.ROOT / "models" / "recipes" / "results" / "threshold_transfer.json"


class KeepingScores(RuptureCoder):
    """The estimator, keeping the out-of-fold scores and session of each labelled training row."""

    def _client_rows(self, sessions, feats, golds):
        rows = super()._client_rows(sessions, feats, golds)
        self.kept_ = {"rupture_sessions": [sessions[i].session_id for i in rows[3]]}
        return rows

    def _therapist_rows(self, sessions, feats, golds):
        rows = super()._therapist_rows(sessions, feats, golds)
        self.kept_["repair_sessions"] = [sessions[i].session_id for i in rows[3]]
        return rows

    def _threshold(self, y, p, corpus):
        kind = "repair" if "rupture" in self.kept_ else "rupture"
        self.kept_[kind] = (np.asarray(y), np.asarray(p), np.asarray(corpus))
        return super()._threshold(y, p, corpus)


def em_prior(p: np.ndarray, prior: float, k: float, iters: int = 200) -> np.ndarray:
    """Scores adjusted to the class prior EM estimates from them (a Beta prior of k turns at ``prior``)."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    pi = prior
    for _ in range(iters):
        a, b = pi / prior * p, (1 - pi) / (1 - prior) * (1 - p)
        new = ((a / (a + b)).sum() + k * prior) / (len(p) + k)
        if abs(new - pi) < 1e-9:
            break
        pi = new
    a, b = pi / prior * p, (1 - pi) / (1 - prior) * (1 - p)
    return a / (a + b)


def per_session(p: np.ndarray, sessions: np.ndarray, fn) -> np.ndarray:
    out = np.empty_like(p)
    for s in np.unique(sessions):
        m = sessions == s
        out[m] = fn(p[m])
    return out


def centred(a: float):
    return lambda p, s, prior: expit(per_session(logit(np.clip(p, 1e-4, 1 - 1e-4)), s, lambda x: x - a * x.mean()))


def session_prior(k: float):
    return lambda p, s, prior: per_session(p, s, lambda x: em_prior(x, prior, k))


RULES = {"corpus median": lambda p, s, prior: p, **{f"session prior k={k}": session_prior(k) for k in (0, 10, 30)},
         **{f"session centred a={a}": centred(a) for a in (0.5, 1.0)}}


def spearman_counts(sessions: np.ndarray, y: np.ndarray, pred: np.ndarray) -> float | None:
    ids = np.unique(sessions)
    g = [y[sessions == i].sum() for i in ids]
    q = [pred[sessions == i].sum() for i in ids]
    rho = spearmanr(g, q).correlation if np.std(g) and np.std(q) else None
    return None if rho is None or np.isnan(rho) else round(float(rho), 3)


def rules_table(y, p, sessions, train) -> dict:
    ytr, ptr, ctr, str_ = train
    prior = float(ptr.mean())
    out = {}
    for name, rule in {"pooled": None, **RULES}.items():
        if rule is None:
            t, q = best_threshold(ytr, ptr), p
        else:
            t, q = transfer_threshold(ytr, rule(ptr, str_, prior), ctr), rule(p, sessions, prior)
        pred = (q >= t).astype(int)
        out[name] = {"threshold": round(float(t), 3), "flagged_rate": round(float(pred.mean()), 3),
                     "f1": round(float(f1_score(y, pred, zero_division=0)), 3),
                     "spearman_counts": spearman_counts(sessions, y, pred)}
    t = best_threshold(y, p)
    out["oracle"] = {"threshold": round(t, 3), "flagged_rate": round(float((p >= t).mean()), 3),
                     "f1": round(float(f1_score(y, (p >= t).astype(int))), 3)}
    out["gold_rate"] = round(float(y.mean()), 3)
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pool, refs = recipe.experiment_pool(recipe.ROOT.parent / "shared" / "data")
    results = {}
    for name, (train, tests) in recipe.split_sessions(pool, refs).items():
        test = [s for sessions in tests.values() for s in sessions]  # the held-out corpora together
        model = KeepingScores(**recipe.CANDIDATES["embedding+text"], cache_dir=recipe.CACHE).fit(train)
        c = collect(model, test)
        kept = model.kept_
        results[name] = {
            "rupture": rules_table((np.array(c["c_gold"]) != "none").astype(int), 1 - np.array(c["c_prob"])[:, 0],
                                   np.array(c["c_session"]), (*kept["rupture"], np.array(kept["rupture_sessions"]))),
            "repair": rules_table((np.array(c["t_gold"]) == "repair").astype(int), np.array(c["t_prob"], dtype=float),
                                  np.array(c["t_session"]), (*kept["repair"], np.array(kept["repair_sessions"])))}
        log.info("%s: %s", name, json.dumps(results[name]["rupture"]))
    OUT.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: {r: v["rupture"][r]["f1"] for r in v["rupture"] if r != "gold_rate"} for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
