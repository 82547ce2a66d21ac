"""Model evaluation: session-grouped cross-validation and held-out scoring.

Scoring is kept apart from training and writing: ``collect`` turns gold annotations and model
decisions into aligned arrays, ``score`` computes the metrics, ``metrics_markdown`` renders
them. Thresholds are always tuned inside the training folds only (``RuptureCoder.fit`` does its
own inner cross-validation), never on the sessions being evaluated.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import (average_precision_score, cohen_kappa_score, confusion_matrix, f1_score,
                             precision_recall_curve, precision_recall_fscore_support, roc_auc_score)
from sklearn.model_selection import GroupKFold

from pipeline.modeling.augment import is_augmented, variants_for
from pipeline.modeling.estimator import RUPTURE_CLASSES, RuptureCoder, gold_arrays
from pipeline.modeling.repeats import recording_groups, without_repeats
from pipeline.codebook import load_codebook
from pipeline.episodes import CodedTurn, episodes, segments, session_ratings
from pipeline.errors import ConfigError, LabelError
from pipeline.records import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One evaluation pair, as spaCy's ``Example(predicted, reference)``: ``reference`` is the
    session as the coder coded it (every annotation it carries is a reference code); ``predicted``
    is the session the model codes (its text and turns; the reference session itself when None).
    Reference and prediction are kept apart, never told apart by an annotation's source."""

    reference: Session
    predicted: Session | None = None

    @property
    def text(self) -> Session:
        return self.predicted if self.predicted is not None else self.reference


def reference_codes(session: Session, book) -> dict[str, list]:
    """Reference codes per turn from all of ``session``'s annotations; None where uncoded."""
    return gold_arrays(session, book, skip_model=False)


def examples(sessions: list[Session], gold_sessions: list[Session] | None = None) -> list[Example]:
    """Pairs from labelled sessions (each its own reference, with any ``model:`` codes left
    out), or from sessions to code and their reference sessions in the same order."""
    if gold_sessions is not None:
        return [Example(g, s) for s, g in zip(sessions, gold_sessions)]
    return [Example(_without_model_codes(s)) for s in sessions]


def _without_model_codes(session: Session) -> Session:
    if not any(a.source.startswith("model:") for a in session.annotations):
        return session
    return replace(session, annotations=tuple(a for a in session.annotations if not a.source.startswith("model:")))


def collect(model: RuptureCoder, data: list[Example] | list[Session], gold_sessions: list[Session] | None = None) -> dict:
    """Code each example's session with ``model`` and align the decisions with the reference
    codes. ``data`` is a list of :class:`Example` (or of labelled sessions, see :func:`examples`)."""
    book = load_codebook()
    pairs = data if data and isinstance(data[0], Example) else examples(data, gold_sessions)
    out = {k: [] for k in ("c_gold", "c_pred", "c_prob", "c_mgold", "c_mpred",
                           "t_gold", "t_pred", "t_prob", "t_sgold", "t_spred", "c_session", "t_session",
                           "c_key", "t_key")}
    out["ratings"] = []  # per session: (session id, reference ratings, model ratings)
    sessions = [e.text for e in pairs]
    for example, session, scores in zip(pairs, sessions, model.predict_proba(sessions)):
        # session ids repeat across corpora (HOPE's "27" and AnnoMI's "27"): counts per session
        # and n_sessions go by the session's source as well (c_key, t_key)
        key = f"{session.source_format}\x1f{session.source_path}\x1f{session.session_id}"
        gold = reference_codes(example.reference, book)
        decisions = model.decide(session, scores)
        out["ratings"].append((session.session_id, *_session_ratings(session, gold, decisions)))
        for d in decisions:
            if d.rupture is not None and gold["rupture"][d.turn] is not None:
                out["c_gold"].append(gold["rupture"][d.turn])
                out["c_pred"].append(d.rupture)
                out["c_prob"].append([d.rupture_scores[c] for c in RUPTURE_CLASSES])
                out["c_mgold"].append([m in gold["markers"][d.turn] for m in book.markers])
                out["c_mpred"].append([m in dict(d.markers) for m in book.markers])
                out["c_session"].append(session.session_id)
                out["c_key"].append(key)
            if d.repair is not None and gold["repair"][d.turn] is not None:
                out["t_gold"].append(gold["repair"][d.turn])
                out["t_pred"].append(d.repair)
                out["t_prob"].append(d.repair_score)
                out["t_sgold"].append([s in gold["strategies"][d.turn] for s in book.strategies])
                out["t_spred"].append([s in dict(d.strategies) for s in book.strategies])
                out["t_session"].append(session.session_id)
                out["t_key"].append(key)
    return out


def _session_ratings(session: Session, gold: dict, decisions: list) -> tuple[dict, dict]:
    """3RS-style session ratings (:mod:`pipeline.episodes` rules) from the reference codes and
    from the model's, over the same turns: those the reference coded (a turn it left uncoded is
    left out of both). Reference codes count with score 1.0, as human codes do in a report."""
    ref, pred = [], []
    for d in decisions:
        turn = session.turns[d.turn]
        role = turn.speaker_role
        if role == "client" and d.rupture is not None and gold["rupture"][d.turn] is not None:
            score = 1 - (d.rupture_scores or {}).get("none", 1.0)
            ref.append(CodedTurn(d.turn, role, turn.start_s, turn.end_s, rupture=gold["rupture"][d.turn]))
            pred.append(CodedTurn(d.turn, role, turn.start_s, turn.end_s, rupture=d.rupture, rupture_score=score))
        elif role == "therapist" and d.repair is not None and gold["repair"][d.turn] is not None:
            ref.append(CodedTurn(d.turn, role, turn.start_s, turn.end_s, repair=gold["repair"][d.turn]))
            pred.append(CodedTurn(d.turn, role, turn.start_s, turn.end_s, repair=d.repair,
                                  repair_score=float(d.repair_score or 0.0)))
    return tuple(session_ratings(segments(t), episodes(t)) for t in (ref, pred))


RATINGS = ("withdrawal", "confrontation", "resolution", "episodes")


def _ratings_spearman(rows: list) -> dict:
    """Spearman over sessions of each session rating, reference vs model (resolution over the
    sessions where both found an episode; None with fewer than 3 sessions or a constant side)."""
    out = {"sessions": len(rows)}
    for key in RATINGS:
        pairs = [(g[key], p[key]) for _, g, p in rows if g[key] is not None and p[key] is not None]
        g, q = np.array([a for a, _ in pairs], dtype=float), np.array([b for _, b in pairs], dtype=float)
        rho = spearmanr(g, q).correlation if len(pairs) >= 3 and g.std() and q.std() else None
        out[key] = None if rho is None or np.isnan(rho) else float(rho)
        out[f"{key}_sessions"] = len(pairs)
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
    both = 0 < y.sum() < len(y)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(y.sum()),
            "n": int(len(y)), "kappa": float(cohen_kappa_score(y, pred)) if len(set(y) | set(pred)) > 1 else 0.0,
            "pr_auc": float(average_precision_score(y, prob)) if y.sum() else None,
            "roc_auc": float(roc_auc_score(y, prob)) if both else None,
            # the F1 the scores would give at the best threshold for THESE sessions (not attainable
            # without their labels): best_f1 - f1 is what the threshold choice costs
            "best_f1": _best_f1(y, prob) if y.sum() else None,
            "flagged_rate": float(np.mean(pred)) if len(pred) else None,
            "gold_rate": float(np.mean(y)) if len(y) else None,
            "ece": expected_calibration_error(y, prob)}


def _best_f1(y: np.ndarray, prob: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(y, prob)
    return float(np.max(2 * precision * recall / np.maximum(precision + recall, 1e-12)))


def _session_spearman(sessions: list, gold: np.ndarray, pred: np.ndarray) -> dict:
    """Spearman correlation of per-session counts (gold vs predicted positives) over sessions."""
    ids = sorted(set(sessions))
    if len(ids) < 3:
        return {"sessions": len(ids), "spearman": None}
    where = {sid: k for k, sid in enumerate(ids)}
    g, q = np.zeros(len(ids)), np.zeros(len(ids))
    for sid, a, b in zip(sessions, gold, pred):
        g[where[sid]] += a
        q[where[sid]] += b
    rho = spearmanr(g, q).correlation if g.std() and q.std() else None
    return {"sessions": len(ids), "spearman": None if rho is None or np.isnan(rho) else float(rho)}


def _per_code(codes, gold: np.ndarray, pred: np.ndarray) -> dict:
    out = {}
    for j, code in enumerate(codes):
        p, r, f, _ = precision_recall_fscore_support(gold[:, j], pred[:, j], average="binary", zero_division=0)
        out[code] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(gold[:, j].sum())}
    return out


def _keys(c: dict, side: str) -> list:
    """The session of each collected row: its source-qualified key, or (collected arrays from
    before the keys existed) its session id."""
    return c.get(f"{side}_key") or c[f"{side}_session"]


INTERVAL_DRAWS = 200  # bootstrap draws of sessions for the intervals of the headline figures
INTERVAL_LEVEL = 0.95


def session_intervals(c: dict, draws: int = INTERVAL_DRAWS, seed: int = 0, level: float = INTERVAL_LEVEL) -> dict | None:
    """Percentile intervals of the headline figures over ``draws`` bootstrap samples of the
    scored sessions (sessions drawn with replacement, every turn of a drawn session kept; one
    sample for the client and therapist figures alike): how much the figures would move on
    another set of sessions of the same kind. They do not cover the model's own variance (its
    fit on other training data, or on the same in another order). None with fewer than 5 sessions."""
    c_keys, t_keys = list(_keys(c, "c")) if c.get("c_gold") else [], list(_keys(c, "t")) if c.get("t_gold") else []
    sessions = sorted(set(c_keys) | set(t_keys))
    if draws <= 0 or len(sessions) < 5:
        return None
    where = {k: n for n, k in enumerate(sessions)}
    rows = {"c": [[] for _ in sessions], "t": [[] for _ in sessions]}
    for side, keys in (("c", c_keys), ("t", t_keys)):
        for r, k in enumerate(keys):
            rows[side][where[k]].append(r)
    rows = {side: [np.array(v, dtype=int) for v in lists] for side, lists in rows.items()}
    cg = np.array(c.get("c_gold") or [])
    cp = np.array(c.get("c_pred") or [])
    c_score = 1 - np.array(c["c_prob"])[:, 0] if len(cg) else np.zeros(0)
    tg = (np.array(c.get("t_gold") or []) == "repair").astype(int)
    tp = (np.array(c.get("t_pred") or []) == "repair").astype(int)
    t_score = np.array(c.get("t_prob") or [], dtype=float)
    c_codes = np.array([RUPTURE_CLASSES.index(x) for x in cg], dtype=int).reshape(-1)
    p_codes = np.array([RUPTURE_CLASSES.index(x) for x in cp], dtype=int).reshape(-1)
    counts = np.array([[(c_codes[r] > 0).sum(), (p_codes[r] > 0).sum()] for r in rows["c"]]).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {k: [] for k in (
        "rupture_f1", "rupture_pr_auc", "kappa3", "spearman_ruptures", "repair_f1", "repair_pr_auc")}
    for _ in range(draws):
        drawn = rng.integers(0, len(sessions), len(sessions))
        ci = np.concatenate([rows["c"][k] for k in drawn])
        ti = np.concatenate([rows["t"][k] for k in drawn])
        if len(ci):
            y = c_codes[ci] > 0
            values["rupture_f1"].append(_f1(y, p_codes[ci] > 0))
            if y.any():
                values["rupture_pr_auc"].append(average_precision_score(y, c_score[ci]))
            values["kappa3"].append(_kappa(c_codes[ci], p_codes[ci], len(RUPTURE_CLASSES)))
            drawn_counts = counts[drawn]
            if drawn_counts[:, 0].std() and drawn_counts[:, 1].std():
                values["spearman_ruptures"].append(spearmanr(drawn_counts[:, 0], drawn_counts[:, 1]).correlation)
        if len(ti):
            values["repair_f1"].append(_f1(tg[ti] > 0, tp[ti] > 0))
            if tg[ti].any():
                values["repair_pr_auc"].append(average_precision_score(tg[ti], t_score[ti]))
    tail = (1 - level) / 2 * 100
    out: dict = {"draws": draws, "level": level, "sessions": len(sessions)}
    for k, v in values.items():
        v = [x for x in v if not np.isnan(x)]
        # a figure that is undefined in many draws (too few positives) gets no interval
        out[k] = [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] if len(v) >= 0.9 * draws else None
    return out


def _f1(y: np.ndarray, q: np.ndarray) -> float:
    """Binary F1 of boolean arrays (0 without positives on either side), as scikit-learn's."""
    tp = np.count_nonzero(y & q)
    denominator = np.count_nonzero(y) + np.count_nonzero(q)
    return 2 * tp / denominator if denominator else 0.0


def _kappa(gold: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Cohen's kappa of two label arrays coded 0..k-1 (nan when chance agreement is total)."""
    confusion = np.bincount(gold * k + pred, minlength=k * k).reshape(k, k).astype(float)
    n = confusion.sum()
    observed = np.trace(confusion) / n
    expected = (confusion.sum(axis=0) @ confusion.sum(axis=1)) / n ** 2
    return float((observed - expected) / (1 - expected)) if expected < 1 else float("nan")


def score(c: dict, intervals: int = INTERVAL_DRAWS) -> dict:
    """All metrics from collected arrays; with ``intervals`` > 0, also the headline figures'
    bootstrap intervals over sessions (:func:`session_intervals`, that many draws)."""
    book = load_codebook()
    result: dict = {"client": None, "therapist": None}
    if c.get("c_gold"):
        gold, pred = np.array(c["c_gold"]), np.array(c["c_pred"])
        prob = np.array(c["c_prob"])
        p, r, f, s = precision_recall_fscore_support(gold, pred, labels=list(RUPTURE_CLASSES), zero_division=0)
        y_bin = (gold != "none").astype(int)
        result["client"] = {
            "n_turns": int(len(gold)), "n_sessions": len(set(_keys(c, "c"))),
            "per_class": {k: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                          for i, k in enumerate(RUPTURE_CLASSES)},
            "macro_f1": float(f1_score(gold, pred, labels=list(RUPTURE_CLASSES), average="macro", zero_division=0)),
            "kappa": float(cohen_kappa_score(gold, pred, labels=list(RUPTURE_CLASSES))),
            "confusion": {"labels": list(RUPTURE_CLASSES),
                          "matrix": confusion_matrix(gold, pred, labels=list(RUPTURE_CLASSES)).tolist()},
            "rupture_vs_none": _binary(y_bin, (pred != "none").astype(int), 1 - prob[:, 0]),
            "markers": _per_code(book.markers, np.array(c["c_mgold"], dtype=int), np.array(c["c_mpred"], dtype=int)),
            "session_counts": _session_spearman(_keys(c, "c"), y_bin, (pred != "none").astype(int)),
        }
    if c.get("ratings"):
        result["session_ratings"] = _ratings_spearman(c["ratings"])
    if c.get("t_gold"):
        gold = (np.array(c["t_gold"]) == "repair").astype(int)
        pred = (np.array(c["t_pred"]) == "repair").astype(int)
        result["therapist"] = {
            "n_turns": int(len(gold)), "n_sessions": len(set(_keys(c, "t"))),
            "repair": _binary(gold, pred, np.array(c["t_prob"], dtype=float)),
            "confusion": {"labels": ["none", "repair"], "matrix": confusion_matrix(gold, pred, labels=[0, 1]).tolist()},
            "strategies": _per_code(book.strategies, np.array(c["t_sgold"], dtype=int), np.array(c["t_spred"], dtype=int)),
            "session_counts": _session_spearman(_keys(c, "t"), gold, pred),
        }
    spread = session_intervals(c, intervals) if intervals else None
    if spread:
        result["intervals"] = spread
    return result


def cross_validate(sessions: list[Session], make_model: Callable[[], RuptureCoder], folds: int = 5,
                   extra_train: list[Session] | None = None, augmented: list[Session] | None = None) -> dict:
    """Session-grouped K-fold CV (repeats of one recording, :mod:`pipeline.modeling.repeats`,
    in the same fold): each fold trains on the other folds' sessions (plus
    ``extra_train``, e.g. constructed data when evaluating on real sessions, and the
    ``augmented`` variants of its training sessions) and is scored on its held-out sessions;
    thresholds are tuned inside the training part only."""
    _no_variants(sessions)
    if folds < 2:
        raise ConfigError("cross-validation needs at least 2 folds", found=f"{folds}",
                          fix="use --cv 2 or more (--cv 0 skips cross-validation)")
    groups = np.array(recording_groups(sessions))  # repeats of a recording in one fold
    recordings = len(set(groups.tolist()))
    k = min(folds, recordings)
    if k < 2:
        raise LabelError("too few sessions to cross-validate", expected="at least 2 sessions of different recordings",
                         found=f"{len(sessions)} sessions of {k} recording(s)")
    parts = []
    for fold, (tr, te) in enumerate(GroupKFold(n_splits=k).split(np.zeros(len(sessions)), groups=groups)):
        train = [sessions[i] for i in tr]
        train += variants_for(train, augmented or []) + list(extra_train or [])
        model = make_model().fit(train)
        parts.append(collect(model, [sessions[i] for i in te]))
        log.info("fold %d/%d done", fold + 1, k)
    return {"folds": k, "recordings": recordings, **score(merge_collected(parts))}


def _no_variants(sessions: list[Session]) -> None:
    if any(is_augmented(s) for s in sessions):
        raise ConfigError("augmented sessions are never scored", fix="pass them as augmented=, not with the real sessions")


def leave_one_corpus_out(sessions: list[Session], make_model: Callable[[], RuptureCoder],
                         splits: dict[str, tuple[list[str], list[str]]],
                         augmented: list[Session] | None = None, orders: int = 1) -> dict:
    """For each named split (training corpora, test corpora), train on the sessions of the
    training corpora and score the sessions of the test corpora (``Session.meta["corpus"]``):
    how the model does on a corpus it never saw. Training sessions that repeat a test session
    (the same recording under another id, :mod:`pipeline.modeling.repeats`) are left out of that
    split's training; ``repeats_left_out`` counts them. Returns one result per split, plus
    ``pooled`` (the test sessions of every split scored together). A split with several test
    corpora also holds ``by_corpus``: each test corpus scored on its own. With ``orders`` > 1
    each split is fitted that many times in all, the extra fits with the training sessions
    shuffled (seeds 0, 1, ...), and ``order_spread`` gives each headline figure's minimum,
    median and maximum over the fits: the model's own variance, which the session intervals
    leave out (the split's other figures are those of the first fit)."""
    if orders < 1:
        raise ConfigError("orders must be at least 1", found=str(orders))
    _no_variants(sessions)
    by_corpus: dict[str, list[Session]] = {}
    for s in sessions:
        by_corpus.setdefault(str(s.meta.get("corpus") or s.source_format), []).append(s)
    out, parts = {}, []
    for name, (train_corpora, test_corpora) in splits.items():
        train = [s for c in train_corpora for s in by_corpus.get(c, [])]
        test = [s for c in test_corpora for s in by_corpus.get(c, [])]
        if not train or not test:
            raise LabelError(f"leave-one-corpus-out split {name!r} has no sessions",
                             found=f"{len(train)} training, {len(test)} test sessions",
                             expected=f"sessions of corpora {', '.join(train_corpora + test_corpora)}")
        train, left_out = without_repeats(train, test)
        model = make_model().fit(train + variants_for(train, augmented or []))
        # each test corpus collected apart (same model, same decisions), so that a split that
        # holds out several corpora also says how each of them did
        each = {c: collect(model, by_corpus[c]) for c in test_corpora if by_corpus.get(c)}
        collected = merge_collected(list(each.values()))
        parts.append(collected)
        out[name] = {"train": list(train_corpora), "test": list(test_corpora), "repeats_left_out": left_out,
                     **score(collected)}
        if orders > 1:
            fits = [headline_figures(out[name])]
            for seed in range(orders - 1):
                shuffled = random.Random(seed).sample(train, len(train))
                refit = make_model().fit(shuffled + variants_for(shuffled, augmented or []))
                fits.append(headline_figures(score(collect(refit, test), intervals=0)))
            out[name]["order_spread"] = order_spread(fits)
        if len(each) > 1:
            out[name]["by_corpus"] = {c: score(part) for c, part in each.items()}
        log.info("leave-one-corpus-out %s done", name)
    out["pooled"] = score(merge_collected(parts))
    return out


HEADLINE = ("rupture_f1", "rupture_pr_auc", "rupture_roc_auc", "kappa3", "spearman_ruptures", "flagged_rate",
            "repair_f1", "repair_pr_auc")
# how the Markdown names the headline figures of the intervals and the order spread
FIGURE_LABELS = {"rupture_f1": "rupture vs none F1", "rupture_pr_auc": "rupture PR-AUC", "kappa3": "three-way kappa",
                 "spearman_ruptures": "Spearman, rupture counts", "flagged_rate": "turns flagged",
                 "repair_f1": "repair F1", "repair_pr_auc": "repair PR-AUC"}


def headline_figures(m: dict) -> dict:
    """The figures of ``HEADLINE`` from a score (None where undefined)."""
    rv = (m.get("client") or {}).get("rupture_vs_none", {})
    rp = (m.get("therapist") or {}).get("repair", {})
    return {"rupture_f1": rv.get("f1"), "rupture_pr_auc": rv.get("pr_auc"), "rupture_roc_auc": rv.get("roc_auc"),
            "kappa3": (m.get("client") or {}).get("kappa"),
            "spearman_ruptures": ((m.get("client") or {}).get("session_counts") or {}).get("spearman"),
            "flagged_rate": rv.get("flagged_rate"), "repair_f1": rp.get("f1"), "repair_pr_auc": rp.get("pr_auc")}


def order_spread(fits: list[dict]) -> dict:
    """``{"fits": n, figure: [min, median, max]}`` over fits' headline figures (None where a
    figure is undefined in any fit)."""
    out: dict = {"fits": len(fits)}
    for k in HEADLINE:
        vals = [f[k] for f in fits]
        out[k] = None if any(v is None for v in vals) else [float(min(vals)), float(np.median(vals)), float(max(vals))]
    return out


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def corpus_table(by_corpus: dict) -> list[str]:
    """Markdown lines: the headline figures of each test corpus of a split, one row each."""
    lines = ["Each test corpus on its own (the same model and thresholds):", "",
             "| corpus | client turns (sessions) | rupture F1 | best-threshold F1 | PR-AUC | flagged / gold rate "
             "| 3-way kappa | Spearman (ruptures) | therapist turns | repair F1 | repair PR-AUC |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for corpus, m in by_corpus.items():
        cl, th = m.get("client") or {}, m.get("therapist") or {}
        rv, r = cl.get("rupture_vs_none") or {}, th.get("repair") or {}
        client = f"{cl['n_turns']} ({cl['n_sessions']})" if cl else "0"
        lines.append(f"| {corpus} | {client} | {_fmt(rv.get('f1'))} | {_fmt(rv.get('best_f1'))} | "
                     f"{_fmt(rv.get('pr_auc'))} | {_fmt(rv.get('flagged_rate'))} / {_fmt(rv.get('gold_rate'))} | "
                     f"{_fmt(cl.get('kappa'))} | {_fmt((cl.get('session_counts') or {}).get('spearman'))} | "
                     f"{th.get('n_turns', 0)} | {_fmt(r.get('f1'))} | {_fmt(r.get('pr_auc'))} |")
    return lines + [""]


def metrics_markdown(title: str, m: dict) -> str:
    """A Markdown section for one evaluation result."""
    lines = [f"### {title}", ""]
    if m.get("repeats_left_out"):
        lines += [f"{m['repeats_left_out']} training session(s) repeated a test session (the same recording under "
                  "another id) and were left out of training.", ""]
    if m.get("recordings"):
        lines += [f"Folds grouped by recording: {m['recordings']} recordings (repeats in one fold).", ""]
    cl = m.get("client")
    if cl:
        rv = cl["rupture_vs_none"]
        lines += [f"Client turns: {cl['n_turns']} in {cl['n_sessions']} sessions.", "",
                  "| metric | value |", "|---|---|",
                  f"| rupture vs none F1 | {_fmt(rv['f1'])} (P {_fmt(rv['precision'])}, R {_fmt(rv['recall'])}, support {rv['support']}) |",
                  f"| rupture vs none PR-AUC | {_fmt(rv['pr_auc'])} |",
                  f"| rupture vs none ROC-AUC | {_fmt(rv.get('roc_auc'))} |",
                  f"| F1 at the best threshold for these sessions (gap to F1) | {_fmt(rv.get('best_f1'))} |",
                  f"| turns flagged / gold rupture rate | {_fmt(rv.get('flagged_rate'))} / {_fmt(rv.get('gold_rate'))} |",
                  f"| session-level Spearman, rupture counts | {_fmt((cl.get('session_counts') or {}).get('spearman'))} |",
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
                  f"| repair PR-AUC | {_fmt(r['pr_auc'])} |", f"| repair ROC-AUC | {_fmt(r.get('roc_auc'))} |",
                  f"| repair F1 at the best threshold for these sessions | {_fmt(r.get('best_f1'))} |",
                  f"| session-level Spearman, repair counts | {_fmt((th.get('session_counts') or {}).get('spearman'))} |",
                  f"| repair kappa | {_fmt(r['kappa'])} |",
                  f"| repair ECE | {_fmt(r['ece'])} |", ""]
    iv = m.get("intervals")
    if iv:
        lines += [f"{iv['level']:.0%} intervals over sessions ({iv['draws']} bootstrap draws of the {iv['sessions']} "
                  "sessions; they leave out the model's own variance): "
                  + "; ".join(f"{label} {_fmt(iv[k][0])}-{_fmt(iv[k][1])}" for k, label in FIGURE_LABELS.items() if iv.get(k)), ""]
    spread = m.get("order_spread")
    if spread:
        lines += [f"Over {spread['fits']} fits that differ only in the order of the training sessions, minimum / median / "
                  "maximum: " + "; ".join(f"{label} {' / '.join(_fmt(v) for v in spread[k])}"
                                         for k, label in FIGURE_LABELS.items() if spread.get(k)), ""]
    sr = m.get("session_ratings")
    if sr:
        lines += [f"3RS-style session ratings (rules of annotation_guides/segment_ratings.md), reference vs model, "
                  f"Spearman over {sr['sessions']} sessions:", "", "| rating | Spearman | sessions |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt(sr.get(k))} | {sr.get(f'{k}_sessions')} |" for k in RATINGS]
        lines.append("")
    if m.get("by_corpus"):
        lines += corpus_table(m["by_corpus"])
    if cl or th:
        codes = {**(cl or {}).get("markers", {}), **(th or {}).get("strategies", {})}
        lines += ["| code | F1 | P | R | support |", "|---|---|---|---|---|"]
        lines += [f"| `{k}` | {_fmt(v['f1'])} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {v['support']} |"
                  for k, v in codes.items()]
        lines.append("")
    return "\n".join(lines)
