"""Model evaluation: session-grouped cross-validation and held-out scoring.

Scoring is kept apart from training and writing: ``collect`` turns gold annotations and model
decisions into aligned arrays, ``score`` computes the metrics, ``metrics_markdown`` renders
them. Thresholds are always tuned inside the training folds only (``RuptureCoder.fit`` does its
own inner cross-validation), never on the sessions being evaluated.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
from sklearn.metrics import (average_precision_score, cohen_kappa_score, confusion_matrix,
                             f1_score, precision_recall_fscore_support)
from sklearn.model_selection import GroupKFold

from pipeline.modeling.estimator import RUPTURE_CLASSES, RuptureCoder, gold_arrays
from pipeline.codebook import load_codebook
from pipeline.errors import ConfigError, LabelError
from pipeline.records import Session

log = logging.getLogger(__name__)


def collect(model: RuptureCoder, sessions: list[Session], gold_sessions: list[Session] | None = None) -> dict:
    """Predict ``sessions`` and align with gold labels (from ``gold_sessions`` if given)."""
    book = load_codebook()
    gold_sessions = gold_sessions or sessions
    out = {k: [] for k in ("c_gold", "c_pred", "c_prob", "c_mgold", "c_mpred",
                           "t_gold", "t_pred", "t_prob", "t_sgold", "t_spred", "c_session", "t_session")}
    for session, gold_session, scores in zip(sessions, gold_sessions, model.predict_proba(sessions)):
        gold = gold_arrays(gold_session, book)
        for d in model.decide(session, scores):
            if d.rupture is not None and gold["rupture"][d.turn] is not None:
                out["c_gold"].append(gold["rupture"][d.turn])
                out["c_pred"].append(d.rupture)
                out["c_prob"].append([d.rupture_scores[c] for c in RUPTURE_CLASSES])
                out["c_mgold"].append([m in gold["markers"][d.turn] for m in book.markers])
                out["c_mpred"].append([m in dict(d.markers) for m in book.markers])
                out["c_session"].append(session.session_id)
            if d.repair is not None and gold["repair"][d.turn] is not None:
                out["t_gold"].append(gold["repair"][d.turn])
                out["t_pred"].append(d.repair)
                out["t_prob"].append(d.repair_score)
                out["t_sgold"].append([s in gold["strategies"][d.turn] for s in book.strategies])
                out["t_spred"].append([s in dict(d.strategies) for s in book.strategies])
                out["t_session"].append(session.session_id)
    return out


def merge_collected(parts: list[dict]) -> dict:
    return {k: [x for p in parts for x in p[k]] for k in parts[0]} if parts else {}


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    if len(y) == 0:
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            ece += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(ece)


def _binary(y: np.ndarray, pred: np.ndarray, prob: np.ndarray) -> dict:
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(y.sum()),
            "n": int(len(y)), "kappa": float(cohen_kappa_score(y, pred)) if len(set(y) | set(pred)) > 1 else 0.0,
            "pr_auc": float(average_precision_score(y, prob)) if y.sum() else None,
            "ece": expected_calibration_error(y, prob)}


def _per_code(codes, gold: np.ndarray, pred: np.ndarray) -> dict:
    out = {}
    for j, code in enumerate(codes):
        p, r, f, _ = precision_recall_fscore_support(gold[:, j], pred[:, j], average="binary", zero_division=0)
        out[code] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(gold[:, j].sum())}
    return out


def score(c: dict) -> dict:
    """All metrics from collected arrays."""
    book = load_codebook()
    result: dict = {"client": None, "therapist": None}
    if c.get("c_gold"):
        gold, pred = np.array(c["c_gold"]), np.array(c["c_pred"])
        prob = np.array(c["c_prob"])
        p, r, f, s = precision_recall_fscore_support(gold, pred, labels=list(RUPTURE_CLASSES), zero_division=0)
        y_bin = (gold != "none").astype(int)
        result["client"] = {
            "n_turns": int(len(gold)), "n_sessions": len(set(c["c_session"])),
            "per_class": {k: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                          for i, k in enumerate(RUPTURE_CLASSES)},
            "macro_f1": float(f1_score(gold, pred, labels=list(RUPTURE_CLASSES), average="macro", zero_division=0)),
            "kappa": float(cohen_kappa_score(gold, pred, labels=list(RUPTURE_CLASSES))),
            "confusion": {"labels": list(RUPTURE_CLASSES),
                          "matrix": confusion_matrix(gold, pred, labels=list(RUPTURE_CLASSES)).tolist()},
            "rupture_vs_none": _binary(y_bin, (pred != "none").astype(int), 1 - prob[:, 0]),
            "markers": _per_code(book.markers, np.array(c["c_mgold"], dtype=int), np.array(c["c_mpred"], dtype=int)),
        }
    if c.get("t_gold"):
        gold = (np.array(c["t_gold"]) == "repair").astype(int)
        pred = (np.array(c["t_pred"]) == "repair").astype(int)
        result["therapist"] = {
            "n_turns": int(len(gold)), "n_sessions": len(set(c["t_session"])),
            "repair": _binary(gold, pred, np.array(c["t_prob"], dtype=float)),
            "confusion": {"labels": ["none", "repair"], "matrix": confusion_matrix(gold, pred, labels=[0, 1]).tolist()},
            "strategies": _per_code(book.strategies, np.array(c["t_sgold"], dtype=int), np.array(c["t_spred"], dtype=int)),
        }
    return result


def cross_validate(sessions: list[Session], make_model: Callable[[], RuptureCoder], folds: int = 5,
                   extra_train: list[Session] | None = None) -> dict:
    """Session-grouped K-fold CV: each fold trains on the other folds' sessions (plus
    ``extra_train``, e.g. constructed data when evaluating on real sessions) and is scored on
    its held-out sessions; thresholds are tuned inside the training part only."""
    groups = np.array([s.session_id for s in sessions])
    if folds < 2:
        raise ConfigError("cross-validation needs at least 2 folds", found=f"{folds}",
                          fix="use --cv 2 or more (--cv 0 skips cross-validation)")
    k = min(folds, len(set(groups)))
    if k < 2:
        raise LabelError("too few sessions to cross-validate", expected="at least 2 sessions", found=f"{k}")
    parts = []
    for fold, (tr, te) in enumerate(GroupKFold(n_splits=k).split(np.zeros(len(sessions)), groups=groups)):
        train = [sessions[i] for i in tr] + list(extra_train or [])
        model = make_model().fit(train)
        parts.append(collect(model, [sessions[i] for i in te]))
        log.info("fold %d/%d done", fold + 1, k)
    return {"folds": k, **score(merge_collected(parts))}


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def metrics_markdown(title: str, m: dict) -> str:
    """A Markdown section for one evaluation result."""
    lines = [f"### {title}", ""]
    cl = m.get("client")
    if cl:
        rv = cl["rupture_vs_none"]
        lines += [f"Client turns: {cl['n_turns']} in {cl['n_sessions']} sessions.", "",
                  "| metric | value |", "|---|---|",
                  f"| rupture vs none F1 | {_fmt(rv['f1'])} (P {_fmt(rv['precision'])}, R {_fmt(rv['recall'])}, support {rv['support']}) |",
                  f"| rupture vs none PR-AUC | {_fmt(rv['pr_auc'])} |",
                  f"| rupture calibration error (ECE) | {_fmt(rv['ece'])} |",
                  f"| three-way kappa | {_fmt(cl['kappa'])} |",
                  f"| three-way macro-F1 | {_fmt(cl['macro_f1'])} |"]
        lines += [f"| {k} F1 | {_fmt(v['f1'])} (support {v['support']}) |" for k, v in cl["per_class"].items()]
        lines += ["", "Confusion (rows gold, columns predicted: none, withdrawal, confrontation): "
                  + "; ".join(str(r) for r in cl["confusion"]["matrix"]), ""]
    th = m.get("therapist")
    if th:
        r = th["repair"]
        lines += [f"Therapist turns: {th['n_turns']} in {th['n_sessions']} sessions.", "",
                  "| metric | value |", "|---|---|",
                  f"| repair F1 | {_fmt(r['f1'])} (P {_fmt(r['precision'])}, R {_fmt(r['recall'])}, support {r['support']}) |",
                  f"| repair PR-AUC | {_fmt(r['pr_auc'])} |", f"| repair kappa | {_fmt(r['kappa'])} |",
                  f"| repair ECE | {_fmt(r['ece'])} |", ""]
    if cl or th:
        codes = {**(cl or {}).get("markers", {}), **(th or {}).get("strategies", {})}
        lines += ["| code | F1 | P | R | support |", "|---|---|---|---|---|"]
        lines += [f"| `{k}` | {_fmt(v['f1'])} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {v['support']} |"
                  for k, v in codes.items()]
        lines.append("")
    return "\n".join(lines)
