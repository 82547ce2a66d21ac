"""Session-aware parts of the coder: the exchange as text, the session stage, and thresholds
that transfer across corpora.

- :class:`TextView`: TF-IDF word n-grams of the exchange (the two turns before a turn, then the
  turn itself; with ``marks``, the context's words marked by their speaker) with a logistic
  head. It sees the words that make a rupture in context ("one question", "fine i guess" after
  a lecture) where a sentence vector of the turn blurs them, and copes with ASR text (lower
  case, no punctuation).
- :func:`session_stage_features`: a second stage over the whole session, from first-stage
  rupture probabilities: the turn's own probabilities, the session's mean and the turn's
  distance from it, the highest of the two client turns either side and of the two before, and
  the turn's length. A session whose turns score high throughout reads differently from one
  isolated high score, and the session mean lets one model serve corpora whose rupture rates
  differ five-fold (HLQC low-quality 22 %, high-quality sessions 3 %).
- :func:`transfer_threshold`: the median of the F1-best thresholds of each corpus (on
  out-of-fold scores) rather than the threshold of the pooled data, which follows whichever
  corpus is largest.
Context is only what a coder of a recording sees: the stage looks at the whole session
(post-hoc coding, as the reference codebook allows); the text view at the turns before.
"""

from __future__ import annotations

import re

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.modeling.features import turn_text
from pipeline.records import Session

N_STAGE_FEATURES = 8
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # the words TextView's tokenizer keeps (scikit-learn's default pattern)
SPEAKER_MARK = {"therapist": "t_", "client": "c_"}  # other speakers: "o_"


def _marked(turn) -> str:
    return ("T " if turn.speaker_role == "therapist" else "C ") + turn_text(turn).lower()


def _speaker_marked(turn) -> str:
    """The turn's words as the text view's tokenizer reads them, each led by its speaker's mark."""
    mark = SPEAKER_MARK.get(turn.speaker_role, "o_")
    return " ".join(mark + word for word in TOKEN.findall(turn_text(turn).lower()))


def exchange_text(session: Session, index: int, before: int = 2, reply: int | None = None,
                  marks: bool = False) -> str:
    """The turn with the ``before`` turns that precede it, lower-cased, each context turn led by
    a role letter (``T``/``C``), ``||`` between them and ``>>`` before the turn; with ``reply`` (a
    turn index, see :func:`reply_indices`), that later turn appended after ``<<``, each of its
    words prefixed ``r_`` so that the view tells a word of the reply from the same word before
    the turn (the reply to one turn is the context of the next).

    :class:`TextView`'s tokenizer keeps words of two or more word characters only, so the role
    letters, the separators and the word "i" never reach the model: the view reads the context's
    words and the turn's own as one bag (``r_`` words excepted). The 2.0.x bundles were trained
    that way and keep it. With ``marks``, each word of the context turns is led by its speaker's
    mark instead (``t_should``, ``c_fine``; other speakers ``o_``), in the tokenizer's own words,
    so that the view tells the context's words, and whose they are, from the turn's
    (``RuptureCoder(repair_marks=True)``; ``models/recipes/context_marks.py``)."""
    parts = [(_speaker_marked if marks else _marked)(t) for t in session.turns[max(0, index - before):index]]
    text = " || ".join(parts) + " >> " + turn_text(session.turns[index]).lower()
    if reply is None:
        return text
    return text + " << " + " ".join(f"r_{word}" for word in _marked(session.turns[reply]).split())


def reply_indices(session: Session) -> list[int | None]:
    """For each turn, the index of the first later turn by the other party (a client turn's is
    the therapist's next turn; ``other`` speakers are passed over), or None."""
    out: list[int | None] = [None] * len(session.turns)
    following: dict[str, int] = {}
    for i in range(len(session.turns) - 1, -1, -1):
        role = session.turns[i].speaker_role
        later = [j for other, j in following.items() if other not in (role, "other")]
        out[i] = min(later) if later else None
        following[role] = i
    return out


class TextView:
    """TF-IDF of exchange texts (word 1- and 2-grams) and a class-balanced logistic regression.

    The n-grams are hashed into ``2 ** n_bits`` buckets instead of being kept in a vocabulary, so
    a fitted model (and a bundle) holds weights per bucket and no words or phrases of the
    transcripts it was trained on."""

    def __init__(self, C: float = 2.0, n_bits: int = 16):
        self.C, self.n_bits = C, n_bits

    def fit(self, texts: list[str], y: np.ndarray, sample_weight: np.ndarray | None = None) -> "TextView":
        self.model_ = make_pipeline(
            HashingVectorizer(ngram_range=(1, 2), n_features=2 ** self.n_bits, alternate_sign=False,
                              norm=None, dtype=np.float32),
            TfidfTransformer(sublinear_tf=True),
            LogisticRegression(C=self.C, class_weight="balanced", max_iter=3000))
        self.model_.fit(texts, y, **({} if sample_weight is None else {"logisticregression__sample_weight": sample_weight}))
        return self

    def predict_proba(self, texts: list[str], classes: tuple) -> np.ndarray:
        p = self.model_.predict_proba(texts)
        full = np.zeros((len(texts), len(classes)))
        for j, c in enumerate(self.model_.classes_):
            full[:, classes.index(c)] = p[:, j]
        return full


def session_stage_features(session: Session, turns: list[int], proba: np.ndarray) -> np.ndarray:
    """Second-stage features of the client turns ``turns`` (in session order) from their
    first-stage rupture probabilities ``proba`` (rows: none, withdrawal, confrontation)."""
    if not turns:
        return np.zeros((0, N_STAGE_FEATURES))
    p_rupture = 1 - proba[:, 0]
    mean = float(p_rupture.mean())
    out = []
    for k, index in enumerate(turns):
        around = np.concatenate([p_rupture[max(0, k - 2):k], p_rupture[k + 1:k + 3]])
        before = p_rupture[max(0, k - 2):k]
        words = len(turn_text(session.turns[index]).split())
        out.append([p_rupture[k], proba[k, 1], proba[k, 2], mean, around.max() if len(around) else 0.0,
                    before.max() if len(before) else 0.0, np.log1p(words), p_rupture[k] - mean])
    return np.asarray(out, dtype=float)


def stage_head() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000))


def best_threshold(y: np.ndarray, p: np.ndarray, default: float = 0.5) -> float:
    """Threshold maximising F1 of y (0/1) given scores p, searched over the upper half of the
    scores' quantiles; ``default`` without positives."""
    if y.sum() == 0 or len(np.unique(p)) < 2:
        return default
    best_t, best_f = default, -1.0
    for t in np.unique(np.quantile(p, np.linspace(0.5, 0.995, 120))):
        pred = p >= t
        tp = float((pred & (y == 1)).sum())
        f1 = 2 * tp / (pred.sum() + y.sum()) if (pred.sum() + y.sum()) else 0.0
        if f1 > best_f:
            best_t, best_f = float(t), f1
    return best_t


def transfer_threshold(y: np.ndarray, p: np.ndarray, corpus: np.ndarray, min_positives: int = 5) -> float:
    """Median over corpora of each corpus's F1-best threshold (corpora with at least
    ``min_positives`` positives); the pooled F1-best threshold when fewer than two qualify."""
    per = [best_threshold(y[corpus == c], p[corpus == c]) for c in np.unique(corpus)
           if y[corpus == c].sum() >= min_positives]
    return float(np.median(per)) if len(per) >= 2 else best_threshold(y, p)
