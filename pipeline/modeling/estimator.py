"""The rupture and repair classifier: a scikit-learn style estimator over sessions.

``RuptureCoder.fit(sessions)`` learns from gold annotations (any source but ``model:``);
``predict_proba(sessions)`` scores every turn (client: none/withdrawal/confrontation and
markers; therapist: repair and strategies) without writing anything; ``decide`` turns scores
into codes with the thresholds chosen by session-grouped cross-validation during ``fit``.
Therapist turns see the client rupture probabilities of the turns before them (out-of-fold
during training), because a repair attempt answers a rupture.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GroupKFold

from pipeline.codebook import Codebook, load_codebook
from pipeline.modeling.embed import embed_cached, get_embedder
from pipeline.errors import ConfigError, LabelError
from pipeline.modeling.context import (N_STAGE_FEATURES, TextView, best_threshold, exchange_text, reply_indices,
                                         session_stage_features, stage_head, transfer_threshold)
from pipeline.modeling.augment import is_augmented, session_group
from pipeline.modeling.features import FeatureConfig, prior_rupture_features, session_features, turn_text
from pipeline.modeling.heads import (HEADS, CalibratedHead, aligned_proba, code_proba, fit_calibrated,  # noqa: F401
                                     fit_codes, make_head, mean_over_draws, repeated_group_folds, rows_matrix)
from pipeline.records import Session

log = logging.getLogger(__name__)
RUPTURE_CLASSES = ("none", "withdrawal", "confrontation")


@dataclass
class SessionScores:
    """Per-turn model scores for one session (rows of non-applicable turns are NaN)."""

    session_id: str
    rupture: np.ndarray  # (n, 3) probabilities of RUPTURE_CLASSES
    markers: np.ndarray  # (n, n_markers)
    repair: np.ndarray  # (n,) probability of a repair attempt
    strategies: np.ndarray  # (n, n_strategies)


@dataclass(frozen=True)
class TurnDecision:
    turn: int
    rupture: str | None
    rupture_scores: dict[str, float] | None
    markers: tuple[tuple[str, float], ...]
    repair: str | None
    repair_score: float | None
    strategies: tuple[tuple[str, float], ...]
    uncertainty: float | None


def gold_arrays(session: Session, book: Codebook, skip_model: bool = True) -> dict[str, list]:
    """Codes per turn from the session's annotations (those of ``model:`` sources left out
    unless ``skip_model`` is False); None where a turn is uncoded."""
    n = len(session.turns)
    out = {"rupture": [None] * n, "markers": [set() for _ in range(n)],
           "repair": [None] * n, "strategies": [set() for _ in range(n)]}
    for a in session.annotations:
        if (skip_model and a.source.startswith("model:")) or a.turn >= n:
            continue
        if a.layer in ("rupture", "repair"):
            out[a.layer][a.turn] = a.code
        elif a.layer in ("markers", "strategies"):
            out[a.layer][a.turn].add(a.code)
    return out


class RuptureCoder(BaseEstimator):
    """Classifies client turns (rupture type, markers) and therapist turns (repair,
    strategies) from embeddings of each turn and its context.

    Parameters
    ----------
    embedder : registry name of the sentence embedder.
    head : ``logreg`` (default), ``svm`` (linear SVM) or ``hgb`` (gradient boosting).
    C : inverse regularisation strength of the linear heads.
    cv : folds of the session-grouped cross-validation used for calibration, thresholds and
        out-of-fold context features.
    cache_dir : directory of the embedding cache (None: no cache).
    text_view : add a TF-IDF view of the exchange (the two turns before and the turn) whose
        probabilities are averaged with the embedding head's (see :mod:`pipeline.modeling.context`).
    session_stage : re-score client turns with a second stage over the whole session's
        first-stage probabilities.
    corpus_threshold : choose decision thresholds as the median of each corpus's F1-best
        threshold (``Session.meta["corpus"]``, else the input format) instead of the pooled one.
    cv_repeats : how many times the session-grouped folds are drawn; with more than one, every
        out-of-fold score (calibration, thresholds, the repair head's rupture context) is the mean
        over the draws, each draw assigning sessions to folds by a seeded hash of their keys, so
        the fitted model does not depend on the order of the training sessions. 1 (default):
        scikit-learn's ``GroupKFold`` once, in the sessions' order, as bundles up to 2.0.1 were fitted.
    text_reply : with ``text_view``, the rupture text view also reads the therapist's reply to
        each client turn (the reference codebook codes a turn knowing the session).
    repair_reply : with ``text_view``, the repair text view also reads the client's answer to
        each therapist turn.
    repair_marks : with ``text_view``, the repair text view reads each word of the two turns
        before a therapist turn marked by its speaker (``c_``, ``t_``), so that it tells what the
        client just said from the therapist's own words (without it the view reads the three
        turns as one bag; :func:`~pipeline.modeling.context.exchange_text`). The rupture view is
        unchanged.
    """

    def __init__(self, embedder: str = "minilm-l6.v1", head: str = "logreg", C: float = 0.05,
                 cv: int = 5, context: bool = True, cues: bool = True, cache_dir: str | None = None,
                 random_state: int = 0, text_view: bool = False, session_stage: bool = False,
                 corpus_threshold: bool = False, cv_repeats: int = 1, text_reply: bool = False,
                 repair_reply: bool = False, repair_marks: bool = False):
        self.embedder = embedder
        self.head = head
        self.C = C
        self.cv = cv
        self.context = context
        self.cues = cues
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.text_view = text_view
        self.session_stage = session_stage
        self.corpus_threshold = corpus_threshold
        self.cv_repeats = cv_repeats
        self.text_reply = text_reply
        self.repair_reply = repair_reply
        self.repair_marks = repair_marks

    def __setstate__(self, state):
        """Models pickled before the session-aware options existed load with them off."""
        state = {"text_view": False, "session_stage": False, "corpus_threshold": False, "cv_repeats": 1,
                 "text_reply": False, "repair_reply": False, "repair_marks": False, **state}
        super().__setstate__(state)

    # -- features ---------------------------------------------------------------------------
    def _features(self, sessions: list[Session]) -> list[np.ndarray]:
        embedder = get_embedder(self.embedder)
        vectors = embed_cached([turn_text(t) for s in sessions for t in s.turns], embedder, self.cache_dir)
        config = FeatureConfig(self.context, self.cues)
        out, start = [], 0
        for s in sessions:
            out.append(self._session_features(s, vectors[start:start + len(s.turns)], config))
            start += len(s.turns)
        return out

    def _session_features(self, session: Session, vectors: np.ndarray, config: FeatureConfig) -> np.ndarray:
        """One session's feature matrix from its turns' vectors, in fitting and in scoring alike:
        experiments that add features override it (``models/recipes/short_reply_context.py``)."""
        return session_features(session, vectors, config)

    def _folds(self, groups: np.ndarray, keys: list[str] | None = None):
        """``(train rows, test rows)`` pairs: ``cv`` session-grouped folds, drawn ``cv_repeats``
        times (``keys``: a name per group number, for the seeded draws)."""
        if self.cv < 2:
            raise ConfigError("cv must be at least 2 (session-grouped folds)", found=f"cv={self.cv}")
        if self.cv_repeats < 1:
            raise ConfigError("cv_repeats must be at least 1", found=f"cv_repeats={self.cv_repeats}")
        k = min(self.cv, len(np.unique(groups)))
        if k < 2:
            raise LabelError("too few sessions to cross-validate",
                             expected="at least 2 labelled sessions", found=f"{k}")
        if self.cv_repeats == 1:
            return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups))
        return repeated_group_folds(groups, keys, k, self.cv_repeats, self.random_state)

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, sessions: list[Session], y=None) -> "RuptureCoder":
        book = load_codebook()
        self.markers_ = book.markers
        self.strategies_ = book.strategies
        self.scheme_ = f"{book.scheme}@{book.version}"
        feats = self._features(sessions)
        golds = [gold_arrays(s, book) for s in sessions]
        Xc, yc, Mc, gc, where_c = self._client_rows(sessions, feats, golds)
        if len(Xc) == 0 or len(np.unique(yc)) < 2:
            raise LabelError("training data needs labelled client turns with and without ruptures",
                             found=f"{len(Xc)} labelled client turns",
                             fix="train on the shipped corpus or label more turns")
        # a variant of a session (augmentation) stays in its source's fold, and calibration and
        # thresholds are fitted on real turns only (pipeline/modeling/augment.py)
        keys = [(s.source_format, session_group(s)) if is_augmented(s) else (si,) for si, s in enumerate(sessions)]
        source_of = {(s.source_format, s.session_id): si for si, s in enumerate(sessions) if not is_augmented(s)}
        group = np.array([source_of.get(k, si) if len(k) == 2 else si for si, k in enumerate(keys)])
        real = np.array([not is_augmented(s) for s in sessions])
        names = [f"{s.source_format}:{s.session_id}" for s in sessions]
        folds = self._folds(group[gc], names)
        real_c = real[gc]
        self.rupture_model_, oof = self._fit_calibrated(Xc, yc, folds, (0, 1, 2), real_c)
        if self.text_view:
            texts = self._row_texts(sessions, where_c, self.text_reply)
            self.text_model_, oof_text = self._fit_text(texts, yc, folds, (0, 1, 2))
            oof = self._fit_blend("rupture", oof, oof_text, yc, folds)
        if self.session_stage:
            stage = self._stage_rows(sessions, where_c, oof)
            self.stage_model_, oof = self._fit_stage(stage, yc, folds)
        corpus_c = np.array([_corpus(sessions[si]) for si, _ in where_c])
        self.rupture_threshold_ = self._threshold((yc > 0).astype(int)[real_c], 1 - oof[real_c, 0], corpus_c[real_c])
        self.marker_model_, self.marker_thresholds_ = self._fit_codes(Xc, Mc, folds)
        # Therapist turns: base features + client rupture context (out-of-fold in training).
        p_client = [np.zeros(len(s.turns)) for s in sessions]
        for (si, ti), p in zip(where_c, 1 - oof[:, 0]):
            p_client[si][ti] = p
        for si, s in enumerate(sessions):
            unlabelled = [t.index for t in s.turns if t.speaker_role == "client" and golds[si]["rupture"][t.index] is None]
            if unlabelled:
                client = [t.index for t in s.turns if t.speaker_role == "client"]
                p = 1 - self._client_proba(s, feats[si], client)[:, 0]
                p_client[si][unlabelled] = p[[client.index(i) for i in unlabelled]]
        tfeats = [np.hstack([f, prior_rupture_features(s, p)]) for s, f, p in zip(sessions, feats, p_client)]
        Xt, yt, St, gt = self._therapist_rows(sessions, tfeats, golds)
        self.has_repair_ = len(Xt) > 0 and len(np.unique(yt)) == 2
        if self.has_repair_:
            tfolds = self._folds(group[gt], names)
            real_t = real[gt]
            self.repair_model_, oof_t = self._fit_calibrated(Xt, yt, tfolds, (0, 1), real_t)
            where_t = [(si, t.index) for si, s in enumerate(sessions) for t in s.turns
                       if t.speaker_role == "therapist" and golds[si]["repair"][t.index] is not None]
            if self.text_view:
                texts = self._row_texts(sessions, where_t, self.repair_reply, self.repair_marks)
                self.repair_text_model_, oof_tt = self._fit_text(texts, yt, tfolds, (0, 1))
                oof_t = self._fit_blend("repair", oof_t, oof_tt, yt, tfolds)
            corpus_t = np.array([_corpus(sessions[si]) for si, _ in where_t])
            self.repair_threshold_ = self._threshold(yt[real_t], oof_t[real_t, 1], corpus_t[real_t])
            self.strategy_model_, self.strategy_thresholds_ = self._fit_codes(Xt, St, tfolds)
        self.n_train_sessions_ = len(sessions)
        self.n_client_turns_ = int(len(Xc))
        self.n_therapist_turns_ = int(len(Xt))
        return self

    def _fit_text(self, texts, y, folds, classes, sample_weight=None):
        """The text view on all rows, and its out-of-fold probabilities (``sample_weight``: per
        row, for the view's regression)."""
        w = None if sample_weight is None else np.asarray(sample_weight)
        oof = np.zeros((len(y), len(classes)))
        for tr, te in folds:
            if len(np.unique(y[tr])) > 1:
                view = self._text_view().fit([texts[i] for i in tr], y[tr], None if w is None else w[tr])
                oof[te] += view.predict_proba([texts[i] for i in te], classes)
            else:
                oof[te, classes.index(y[tr][0])] += 1.0
        return self._text_view().fit(texts, y, w), mean_over_draws(oof, folds)

    def _fit_blend(self, head: str, embedding: np.ndarray, text: np.ndarray, y: np.ndarray, folds) -> np.ndarray:
        """Fit how the ``head``'s (``rupture`` or ``repair``) embedding and text-view probabilities
        combine, from their out-of-fold probabilities, and return the combined out-of-fold
        probabilities. Here nothing is fitted: their mean (experiments substitute a learned one)."""
        return self._blend(head, embedding, text)

    def _blend(self, head: str, embedding: np.ndarray, text: np.ndarray) -> np.ndarray:
        """The ``head``'s embedding and text-view probabilities combined (rows: turns, columns:
        classes): their mean."""
        return (embedding + text) / 2

    @staticmethod
    def _text_view() -> TextView:
        """A new, unfitted text view (experiments substitute another)."""
        return TextView()

    @staticmethod
    def _stage_rows(sessions, where, proba):
        """Second-stage features of labelled client rows, computed session by session."""
        out = np.zeros((len(where), N_STAGE_FEATURES))
        by_session: dict[int, list[int]] = {}
        for row, (si, _) in enumerate(where):
            by_session.setdefault(si, []).append(row)
        for si, rows in by_session.items():
            rows = sorted(rows, key=lambda r: where[r][1])
            out[rows] = session_stage_features(sessions[si], [where[r][1] for r in rows], proba[rows])
        return out

    def _fit_stage(self, X, y, folds):
        oof = np.zeros((len(y), 3))
        for tr, te in folds:
            oof[te] += aligned_proba(stage_head().fit(X[tr], y[tr]), X[te], (0, 1, 2))
        return stage_head().fit(X, y), mean_over_draws(oof, folds)

    def _threshold(self, y, p, corpus):
        return transfer_threshold(y, p, corpus) if self.corpus_threshold else best_threshold(y, p)

    def _client_proba(self, session: Session, f: np.ndarray, client: list[int],
                      text: np.ndarray | None = None) -> np.ndarray:
        """Rupture probabilities (none, withdrawal, confrontation) of the client turns ``client``
        (``text``: the text view's probabilities of those turns, if already computed)."""
        p = self.rupture_model_.predict_proba(f[client])
        if self.text_view:
            if text is None:
                text = self.text_model_.predict_proba(self._view_texts(session, client, self.text_reply), (0, 1, 2))
            p = self._blend("rupture", p, text)
        if self.session_stage:
            p = aligned_proba(self.stage_model_, session_stage_features(session, list(client), p), (0, 1, 2))
        return p

    @staticmethod
    def _view_texts(session: Session, turns: list[int], reply: bool, marks: bool = False) -> list[str]:
        """A text view's exchange texts of ``turns``: each with the two turns before it (with
        ``marks``, their words marked by speaker: ``repair_marks``) and, with ``reply``, the other
        party's next turn (``text_reply``, ``repair_reply``). The one place a view's texts are
        made, in fitting and in scoring alike: experiments override it and nothing else."""
        replies = reply_indices(session) if reply else [None] * len(session.turns)
        return [exchange_text(session, i, reply=replies[i], marks=marks) for i in turns]

    def _row_texts(self, sessions: list[Session], where: list[tuple[int, int]], reply: bool,
                   marks: bool = False) -> list[str]:
        """:meth:`_view_texts` of labelled rows ``(session, turn)``, one call per session."""
        rows: dict[int, list[int]] = {}
        for row, (si, _) in enumerate(where):
            rows.setdefault(si, []).append(row)
        out = [""] * len(where)
        for si, these in rows.items():
            for row, text in zip(these, self._view_texts(sessions[si], [where[r][1] for r in these], reply, marks)):
                out[row] = text
        return out

    def _client_rows(self, sessions, feats, golds):
        X, y, M, g, where = [], [], [], [], []
        for si, (s, f, gold) in enumerate(zip(sessions, feats, golds)):
            for t in s.turns:
                code = gold["rupture"][t.index]
                if t.speaker_role != "client" or code is None:
                    continue
                X.append(f[t.index])
                y.append(RUPTURE_CLASSES.index(code))
                M.append([m in gold["markers"][t.index] for m in self.markers_])
                g.append(si)
                where.append((si, t.index))
        return (rows_matrix(X, feats), np.array(y, dtype=int),
                np.array(M, dtype=int).reshape(len(M), len(self.markers_)), np.array(g), where)

    def _therapist_rows(self, sessions, feats, golds):
        X, y, S, g = [], [], [], []
        for si, (s, f, gold) in enumerate(zip(sessions, feats, golds)):
            for t in s.turns:
                code = gold["repair"][t.index]
                if t.speaker_role != "therapist" or code is None:
                    continue
                X.append(f[t.index])
                y.append(int(code == "repair"))
                S.append([c in gold["strategies"][t.index] for c in self.strategies_])
                g.append(si)
        return (rows_matrix(X, feats), np.array(y, dtype=int),
                np.array(S, dtype=int).reshape(len(S), len(self.strategies_)), np.array(g))

    def _fit_calibrated(self, X, y, folds, classes, calibrate_on=None):
        return fit_calibrated(make_head(self.head, self.C, self.random_state), X, y, folds, classes, calibrate_on)

    def _fit_codes(self, X, Y, folds):
        return fit_codes(X, Y, folds, self.C)

    @staticmethod
    def _code_proba(head, X, n_codes: int) -> np.ndarray:
        return code_proba(head, X, n_codes)

    @staticmethod
    def _score(model, X) -> np.ndarray:
        if hasattr(model, "predict_proba"):
            return model.predict_proba(X)[:, 1]
        return 1 / (1 + np.exp(-model.decision_function(X)))

    # -- prediction ---------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "rupture_model_"):
            raise NotFittedError("RuptureCoder is not fitted yet; call fit() or load a model bundle")

    def predict_proba(self, sessions: list[Session]) -> list[SessionScores]:
        """Score every turn of every session; writes nothing."""
        self._check_fitted()
        feats = self._features(sessions)
        views = self._text_views(sessions) if self.text_view else [(None, None)] * len(sessions)
        return [self._score_session(s, f, *v) for s, f, v in zip(sessions, feats, views)]

    def _text_views(self, sessions: list[Session]) -> list[tuple[np.ndarray, np.ndarray]]:
        """The text views' probabilities of every session's client and therapist turns, from one
        call per view for all the sessions (the view scores each exchange on its own: sparse rows,
        so the numbers are the same as session by session, tested; scoring HLQC dev's 214 sessions
        in chunks of 16 took 1.5 s instead of 2.0-2.4 s with a call per session)."""
        client, therapist = [], []
        for s in sessions:
            client.append(self._view_texts(s, [t.index for t in s.turns if t.speaker_role == "client"],
                                           self.text_reply))
            therapist.append(self._view_texts(s, [t.index for t in s.turns if t.speaker_role == "therapist"],
                                              self.repair_reply, self.repair_marks))

        def per_session(model, texts: list[list[str]], classes: tuple) -> list[np.ndarray]:
            flat = [x for group in texts for x in group]
            p = model.predict_proba(flat, classes) if flat else np.zeros((0, len(classes)))
            return np.split(p, np.cumsum([len(group) for group in texts])[:-1])

        c = per_session(self.text_model_, client, (0, 1, 2))
        t = per_session(self.repair_text_model_, therapist, (0, 1)) if self.has_repair_ else [None] * len(sessions)
        return list(zip(c, t))

    def _score_session(self, session: Session, f: np.ndarray, text_client: np.ndarray | None = None,
                       text_therapist: np.ndarray | None = None) -> SessionScores:
        n = len(session.turns)
        roles = np.array([t.speaker_role for t in session.turns])
        rup = np.full((n, 3), np.nan)
        mk = np.full((n, len(self.markers_)), np.nan)
        rep = np.full(n, np.nan)
        st = np.full((n, len(self.strategies_)), np.nan)
        client = np.where(roles == "client")[0]
        if len(client):
            rup[client] = self._client_proba(session, f, list(client), text_client)
            mk[client] = self._code_proba(self.marker_model_, f[client], len(self.markers_))
        therapist = np.where(roles == "therapist")[0]
        if len(therapist):
            p_client = np.where(roles == "client", 1 - np.nan_to_num(rup[:, 0], nan=1.0), 0.0)
            ft = np.hstack([f, prior_rupture_features(session, p_client)])[therapist]
            if self.has_repair_:
                rep[therapist] = self._score(self.repair_model_, ft)
                if self.text_view:
                    if text_therapist is None:
                        text_therapist = self.repair_text_model_.predict_proba(
                            self._view_texts(session, list(therapist), self.repair_reply, self.repair_marks), (0, 1))
                    both = np.column_stack([1 - rep[therapist], rep[therapist]])
                    rep[therapist] = self._blend("repair", both, text_therapist)[:, 1]
                st[therapist] = self._code_proba(self.strategy_model_, ft, len(self.strategies_))
            else:
                rep[therapist] = 0.0
                st[therapist] = 0.0
        return SessionScores(session.session_id, rup, mk, rep, st)

    def decide(self, session: Session, scores: SessionScores) -> list[TurnDecision]:
        """Codes per turn from scores and the fitted thresholds."""
        self._check_fitted()
        out = []
        for t in session.turns:
            i = t.index
            if t.speaker_role == "client":
                out.append(self._decide_client(i, scores))
            elif t.speaker_role == "therapist":
                out.append(self._decide_therapist(i, scores))
            else:
                out.append(TurnDecision(i, None, None, (), None, None, (), None))
        return out

    def _decide_client(self, i: int, scores: SessionScores) -> TurnDecision:
        p = scores.rupture[i]
        p_rupture = 1 - p[0]
        t = self.rupture_threshold_
        code = "none"
        if p_rupture >= t:
            code = "withdrawal" if p[1] >= p[2] else "confrontation"
        markers = ()
        if code != "none":
            pairs = [(m, float(s)) for m, s in zip(self.markers_, scores.markers[i])]
            chosen = [x for x, th in zip(pairs, self.marker_thresholds_) if x[1] >= th]
            if not any(m.startswith(code + ".") for m, _ in chosen):
                chosen.append(max((x for x in pairs if x[0].startswith(code + ".")), key=lambda x: x[1]))
            markers = tuple(sorted(chosen, key=lambda x: -x[1]))
        return TurnDecision(i, code, dict(zip(RUPTURE_CLASSES, map(float, p))), markers, None, None, (),
                            _uncertainty(p_rupture, t))

    def _decide_therapist(self, i: int, scores: SessionScores) -> TurnDecision:
        p = float(scores.repair[i])
        t = self.repair_threshold_ if self.has_repair_ else 1.0
        code = "repair" if p >= t else "none"
        strategies = ()
        if code == "repair":
            pairs = [(c, float(s)) for c, s in zip(self.strategies_, scores.strategies[i])]
            strategies = tuple(x for x, th in zip(pairs, self.strategy_thresholds_) if x[1] >= th)
            if not strategies:
                strategies = (max(pairs, key=lambda x: x[1]),)
            strategies = tuple(sorted(strategies, key=lambda x: -x[1]))
        return TurnDecision(i, None, None, (), code, p, strategies, _uncertainty(p, t))


def _corpus(session: Session) -> str:
    """The corpus a session belongs to, for thresholds that transfer across corpora."""
    return str(session.meta.get("corpus") or session.source_format or "unknown")


def _uncertainty(p: float, threshold: float) -> float:
    """1 at the decision threshold, falling linearly to 0 at certainty (p = 0 or 1)."""
    if p == threshold:
        return 1.0
    span = threshold if p < threshold else 1 - threshold
    if span <= 0:
        return 0.0
    return float(max(0.0, 1 - abs(p - threshold) / span))
