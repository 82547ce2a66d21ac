"""The classifier heads of :class:`~pipeline.modeling.estimator.RuptureCoder`: base heads,
their calibration on out-of-fold scores, and the heads that pick codes (markers, strategies)
for a positive turn.

``CalibratedHead`` objects are pickled inside 1.x and 2.x bundles; the estimator module keeps
the name importable for bundles written before this module existed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from pipeline.errors import ConfigError
from pipeline.modeling.context import best_threshold

HEADS = ("logreg", "svm", "hgb")


def make_head(name: str, C: float, random_state: int):
    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=3000))
    if name == "svm":
        return make_pipeline(StandardScaler(), LinearSVC(C=C * 0.1, class_weight="balanced", max_iter=5000,
                                                         random_state=random_state))
    if name == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, class_weight="balanced",
                                              random_state=random_state)
    raise ConfigError(f"unknown head {name!r}", expected=f"one of {', '.join(HEADS)}")


def rows_matrix(rows: list, feats: list[np.ndarray]) -> np.ndarray:
    """Feature rows as a matrix, also (0, width) when there are none."""
    return np.array(rows, dtype=np.float32).reshape(len(rows), feats[0].shape[1] if feats else 0)


def raw_scores(model, X, classes) -> np.ndarray:
    """Uncalibrated scores aligned to ``classes`` (log-probabilities or decision values; one
    column for binary problems). Classes missing from a training fold get a very low score."""
    if hasattr(model, "predict_proba"):
        p = np.log(np.clip(model.predict_proba(X), 1e-6, 1.0))
        full = np.full((len(X), len(classes)), np.log(1e-6))
        for j, c in enumerate(model.classes_):
            full[:, classes.index(c)] = p[:, j]
        return full[:, 1:] - full[:, :1] if len(classes) == 2 else full
    d = model.decision_function(X)
    if len(classes) == 2:
        return d.reshape(-1, 1)
    if d.ndim == 1:  # a fold that saw two of the classes: one column, for classes_[1]
        d = np.column_stack([-d, d])
    full = np.full((len(X), len(classes)), -10.0)
    for j, c in enumerate(model.classes_):
        full[:, classes.index(c)] = d[:, j]
    return full


def aligned_proba(model, X, classes) -> np.ndarray:
    """predict_proba with columns for every class in ``classes`` (0 for unseen classes)."""
    p = model.predict_proba(X)
    full = np.zeros((len(X), len(classes)))
    for j, c in enumerate(model.classes_):
        full[:, classes.index(c)] = p[:, j]
    return full


@dataclass
class CalibratedHead:
    """A fitted head and a logistic calibrator over its raw scores (Platt scaling for binary
    heads, vector scaling for the three-way rupture head)."""

    base: object
    calibrator: LogisticRegression
    classes: tuple

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of every class in ``classes``, also those absent from training (0)."""
        return aligned_proba(self.calibrator, raw_scores(self.base, X, self.classes), self.classes)


def repeated_group_folds(groups: np.ndarray, names: list[str], k: int, repeats: int, seed: int) -> list:
    """``k`` group folds drawn ``repeats`` times: in each draw the groups are ordered by a hash of
    (``seed``, draw, the group's name ``names[group]``) and each goes to the fold with the fewest
    rows so far. The folds depend on the groups' names and sizes, not on the rows' order."""
    groups = np.asarray(groups)
    ids, sizes = np.unique(groups, return_counts=True)
    out = []
    for draw in range(repeats):
        order = sorted(range(len(ids)), key=lambda i: (
            hashlib.sha256(f"{seed}:{draw}:{names[ids[i]]}".encode()).hexdigest(), names[ids[i]]))
        fold_of, rows = {}, [0] * k
        for i in order:
            f = rows.index(min(rows))
            fold_of[ids[i]] = f
            rows[f] += sizes[i]
        assigned = np.array([fold_of[g] for g in groups])
        out += [(np.where(assigned != f)[0], np.where(assigned == f)[0]) for f in range(k)]
    return out


def mean_over_draws(summed: np.ndarray, folds, rows: dict | None = None) -> np.ndarray:
    """Out-of-fold scores summed over repeated draws of the folds, divided by how often each row
    was held out (rows held out once, as with one draw, are left as they are; ``rows``: the
    array's row of each data row, when it holds a subset)."""
    held = np.concatenate([te for _, te in folds]).astype(int) if folds else np.zeros(0, dtype=int)
    if rows is not None:
        held = np.array([rows[r] for r in held if r in rows], dtype=int)
    seen = np.bincount(held, minlength=len(summed))
    many = seen > 1
    summed[many] = summed[many] / seen[many, None]
    return summed


def fit_calibrated(base, X, y, folds, classes, calibrate_on=None, sample_weight=None):
    """``base`` fitted on all data plus a calibrator fitted on out-of-fold scores (of the rows
    ``calibrate_on`` marks, default all); returns the calibrated head and its out-of-fold
    calibrated probabilities of every row (for thresholds). ``sample_weight`` (per row) weighs
    the rows in ``base``'s fits (a pipeline's last step); the calibrator is fitted unweighted."""

    def weights(rows) -> dict:
        if sample_weight is None:
            return {}
        step = f"{base.steps[-1][0]}__sample_weight" if hasattr(base, "steps") else "sample_weight"
        return {step: np.asarray(sample_weight)[rows]}

    raw = np.zeros((len(y), len(classes) if len(classes) > 2 else 1))
    for tr, te in folds:
        # a training part with one class (all positives held out) predicts that class
        if len(np.unique(y[tr])) > 1:
            fold = clone(base).fit(X[tr], y[tr], **weights(tr))
        else:
            fold = DummyClassifier(strategy="prior").fit(X[tr], y[tr])
        raw[te] += raw_scores(fold, X[te], classes)
    raw = mean_over_draws(raw, folds)
    rows = np.ones(len(y), dtype=bool) if calibrate_on is None else np.asarray(calibrate_on, dtype=bool)
    calibrator = LogisticRegression(C=10.0, max_iter=2000).fit(raw[rows], y[rows])
    head = CalibratedHead(clone(base).fit(X, y, **weights(slice(None))), calibrator, tuple(classes))
    return head, aligned_proba(calibrator, raw, tuple(classes))


def fit_codes(X, Y, folds, C: float):
    """Which codes (markers or strategies) a positive turn shows: one multinomial head
    trained on the positive turns only (a turn with several codes appears once per code),
    giving P(code | rupture) or P(strategy | repair). Per-code thresholds come from
    out-of-fold probabilities. Returns (head or None, thresholds)."""
    n_codes = Y.shape[1]
    rows = np.where(Y.sum(axis=1) > 0)[0]
    if len(rows) < 5 or len(np.unique(np.where(Y[rows])[1])) < 2:
        return None, np.ones(n_codes)
    codes = tuple(range(n_codes))
    oof = np.zeros((len(rows), n_codes))
    position = {r: k for k, r in enumerate(rows)}
    for tr, te in folds:
        tr_rows = [r for r in tr if r in position]
        te_rows = [r for r in te if r in position]
        if not tr_rows or not te_rows:
            continue
        head = code_head(X, Y, tr_rows, C)
        if head is not None:
            oof[[position[r] for r in te_rows]] += aligned_proba(head, X[te_rows], codes)
    oof = mean_over_draws(oof, folds, position)
    thresholds = np.array([best_threshold(Y[rows, j], oof[:, j], default=1.0) for j in range(n_codes)])
    return code_head(X, Y, list(rows), C), thresholds


def code_head(X, Y, rows, C: float):
    pairs = [(r, j) for r in rows for j in np.where(Y[r])[0]]
    y = np.array([j for _, j in pairs])
    if len(np.unique(y)) < 2:
        return None
    head = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000))
    return head.fit(X[[r for r, _ in pairs]], y)


def code_proba(head, X, n_codes: int) -> np.ndarray:
    if head is None:
        return np.zeros((len(X), n_codes))
    return aligned_proba(head, X, tuple(range(n_codes)))
