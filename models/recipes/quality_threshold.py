"""Does a threshold per session quality transfer better than one for all? (issue 12, a diagnosis)

Low-quality MI sessions hold far more ruptures than high-quality ones (22 % of client turns in
the HLQC low sessions, 3-4 % in HLQC high and AnnoMI), and the default's one threshold (the median
of each training corpus's F1-best threshold) flags 4 % of the turns in either. This recipe
measures decision rules that set the threshold by the session's therapy quality, on the default
configuration's scores:

- ``one threshold``: the default's rule (``transfer_threshold`` over all training corpora);
- ``quality known``: the F1-best threshold of the training sessions of the same quality (low:
  the HLQC low sessions; high: the median rule over the other corpora), the quality taken from
  the data (HLQC's high/low recordings, AnnoMI's ``mi_quality``; HOPE and Rogers count as high);
- ``quality predicted``: the same, with the quality predicted from the session's own text by a
  session-level classifier (TF-IDF of the therapist's words + logistic regression) trained on the
  training split's HLQC sessions only, high against low, so that it learns the therapy and not the
  transcript style (all HLQC sessions are ASR); low when its probability is 0.5 or more;
- ``oracle``: the best threshold for the test sessions themselves (not attainable).

Splits, each a different question:
- ``HLQC low, half k`` (k = 1, 2): train on every pool session but one half of the HLQC low
  sessions, test on that half. Low-quality sessions are in training here, as they are for the
  shipped model; within one corpus, so easier than a new corpus (the rule, not the model, is
  what is compared);
- ``HLQC high, half k``: the same for the high-quality sessions (the control: the rule must not
  cost where ruptures are rare);
- ``HLQC -> AnnoMI, HOPE, Rogers``: the card's leave-one-corpus-out split.
Each half keeps every repeated recording (``pipeline/modeling/repeats.py``) on one side, and
every split's training leaves out the sessions that repeat a test session (before 2026-12-06 the
halves hashed session ids, and five repeat pairs straddled them).
The leave-one-corpus-out split that holds out all HLQC low sessions cannot test these rules
(there are then no low-quality sessions to learn from).

Run from the repository root (about 10 minutes on 2 cores with the embedding cache warm):

    python models/recipes/quality_threshold.py   # writes models/recipes/results/quality_threshold.json
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_default as recipe  # noqa: E402
from threshold_transfer import KeepingScores, spearman_counts  # noqa: E402

from pipeline.modeling.context import best_threshold, transfer_threshold  # noqa: E402
from pipeline.modeling.evaluate import collect  # noqa: E402
from pipeline.modeling.repeats import recording_halves, without_repeats  # noqa: E402

log = logging.getLogger("quality_threshold")
OUT = recipe.ROOT / "models" / "recipes" / "results" / "quality_threshold.json"


def is_low(session) -> bool:
    """The session's recorded quality: HLQC's low recordings and AnnoMI's ``mi_quality`` low."""
    return session.meta.get("corpus") == "hlqc_low" or str(session.meta.get("mi_quality", "")).lower() == "low"


def therapist_text(session) -> str:
    return " ".join(t.clean_text.lower() for t in session.turns if t.speaker_role == "therapist")


def quality_model(train: list):
    """Low-vs-high classifier over the therapist's words, trained on the HLQC sessions of ``train``."""
    hlqc = [s for s in train if s.meta.get("corpus") in ("hlqc_low", "hlqc_high")]
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x = vec.fit_transform([therapist_text(s) for s in hlqc])
    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(x, [is_low(s) for s in hlqc])
    return lambda sessions: clf.predict_proba(vec.transform([therapist_text(s) for s in sessions]))[:, 1]


def key(session) -> str:
    """A session's key in collect's c_key / t_key (ids repeat across corpora)."""
    return f"{session.source_format}\x1f{session.source_path}\x1f{session.session_id}"


def rules(kept: tuple, kept_sessions: np.ndarray, low_of: dict, y, p, sessions, test_low_known, test_low_pred) -> dict:
    """F1, flagged rate and Spearman of counts of each rule on the test rows."""
    ytr, ptr, ctr = kept
    low_tr = np.array([low_of[s] for s in kept_sessions])
    t_one = transfer_threshold(ytr, ptr, ctr)
    t_low = best_threshold(ytr[low_tr], ptr[low_tr]) if ytr[low_tr].sum() else t_one
    t_high = transfer_threshold(ytr[~low_tr], ptr[~low_tr], ctr[~low_tr])
    out = {"thresholds": {"one": round(t_one, 3), "low": round(t_low, 3), "high": round(t_high, 3)}}
    for name, t in (("one threshold", np.full(len(p), t_one)),
                    ("quality known", np.where(test_low_known, t_low, t_high)),
                    ("quality predicted", np.where(test_low_pred, t_low, t_high))):
        pred = (p >= t).astype(int)
        out[name] = {"f1": round(float(f1_score(y, pred, zero_division=0)), 3),
                     "flagged_rate": round(float(pred.mean()), 3), "spearman_counts": spearman_counts(sessions, y, pred)}
    t = best_threshold(y, p)
    out["oracle"] = {"f1": round(float(f1_score(y, (p >= t).astype(int), zero_division=0)), 3),
                     "flagged_rate": round(float((p >= t).mean()), 3)}
    out["gold_rate"] = round(float(y.mean()), 3)
    return out


def splits(pool: list) -> dict:
    by = {}
    for s in pool:
        by.setdefault(s.meta["corpus"], []).append(s)
    out = {}
    for corpus in ("hlqc_low", "hlqc_high"):
        halves = recording_halves(by[corpus])
        for k in (0, 1):
            test = [s for s, h in zip(by[corpus], halves) if h == k]
            ids = {id(s) for s in test}
            out[f"{corpus.replace('hlqc_', 'HLQC ')}, half {k + 1}"] = (
                without_repeats([s for s in pool if id(s) not in ids], test)[0], test)
    name = "HLQC -> AnnoMI, HOPE, Rogers"
    train_c, test_c = recipe.LOCO[name]
    test = [s for c in test_c for s in by[c]]
    out[name] = (without_repeats([s for c in train_c for s in by[c]], test)[0], test)
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pool, _ = recipe.experiment_pool(recipe.ROOT.parent / "shared" / "data")
    results = {}
    for name, (train, test) in splits(pool).items():
        model = KeepingScores(**recipe.CANDIDATES["embedding+text"], cache_dir=recipe.CACHE).fit(train)
        predict_low = quality_model(train)
        p_low = dict(zip(map(key, test), predict_low(test)))
        low_of = {s.session_id: is_low(s) for s in train}  # HLQC's ids (low_..., high_...) are unique
        known = {key(s): is_low(s) for s in test}
        c = collect(model, test)
        kept = model.kept_
        result = {"test_sessions": len(test), "known_low": sum(known.values()),
                  "predicted_low": int(sum(v >= 0.5 for v in p_low.values())),
                  "quality_accuracy": round(float(np.mean([(p_low[s] >= 0.5) == known[s] for s in known])), 3)}
        for head, gold, prob, sessions, kind in (
                ("rupture", (np.array(c["c_gold"]) != "none").astype(int), 1 - np.array(c["c_prob"])[:, 0],
                 np.array(c["c_key"]), "rupture"),
                ("repair", (np.array(c["t_gold"]) == "repair").astype(int), np.array(c["t_prob"], dtype=float),
                 np.array(c["t_key"]), "repair")):
            result[head] = rules(kept[kind], np.array(kept[f"{kind}_sessions"]), low_of, gold, prob, sessions,
                                 np.array([known[s] for s in sessions]), np.array([p_low[s] >= 0.5 for s in sessions]))
        results[name] = result
        log.info("%s: %s", name, json.dumps(result))
    OUT.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: {r: v["rupture"][r]["f1"] for r in ("one threshold", "quality known", "quality predicted",
                                                            "oracle")} for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
