"""Embedding head and TF-IDF view stacked by a learned combiner instead of averaged? (issue 12, an experiment)

The default averages the probabilities of its embedding head and its TF-IDF view of the exchange
with equal weight, for ruptures and for repairs. Stacking learns the combination instead: a
logistic regression over the two sources' out-of-fold log-probabilities (client turns: the three
classes of each, six features, multinomial; therapist turns: the repair log-odds of each, two
features), fitted on the training sessions' out-of-fold probabilities. The combined out-of-fold
probabilities that set the thresholds (the corpus median, as in the default) are themselves
out of fold: the combiner is refitted without each fold to score it, on the same session-grouped
folds. Candidates, on the same leave-one-corpus-out splits and reference check as
``train_default.py`` (its functions are imported):

- ``averaged``: the default's configuration (``embedding+text``);
- ``stacked``: the same heads and views, combined by the learned combiner.

Fixed before the run: the combiner's features and its regularisation (scikit-learn's default,
C = 1). Run from the repository root (about 10 minutes on 2 cores, embeddings cached):

    python models/recipes/stacked_views.py   # writes models/recipes/results/stacked_views.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_default as R  # noqa: E402

from pipeline.modeling.estimator import RuptureCoder  # noqa: E402

OUT = ROOT / "models" / "recipes" / "results" / "stacked_views.json"
EPS = 1e-6


def stack_features(head: str, embedding: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Client turns: both sources' log-probabilities of the three classes; therapist turns: both
    sources' repair log-odds."""
    e, t = np.clip(embedding, EPS, 1 - EPS), np.clip(text, EPS, 1 - EPS)
    if head == "rupture":
        return np.hstack([np.log(e), np.log(t)])
    return np.column_stack([np.log(e[:, 1] / e[:, 0]), np.log(t[:, 1] / t[:, 0])])


def combined(model: LogisticRegression, x: np.ndarray, n_classes: int) -> np.ndarray:
    """The combiner's probabilities with a column for every class (a fold may lack one)."""
    out = np.zeros((len(x), n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


class StackedCoder(RuptureCoder):
    """The default estimator with a learned combination of its embedding and text probabilities."""

    def _fit_blend(self, head, embedding, text, y, folds):
        x, k = stack_features(head, embedding, text), embedding.shape[1]
        oof = np.zeros((len(y), k))
        for tr, te in folds:
            if len(np.unique(y[tr])) > 1:
                oof[te] = combined(LogisticRegression(max_iter=2000).fit(x[tr], y[tr]), x[te], k)
            else:
                oof[te] = super()._blend(head, embedding[te], text[te])
        self.__dict__.setdefault("combiners_", {})[head] = LogisticRegression(max_iter=2000).fit(x, y)
        return oof

    def _blend(self, head, embedding, text):
        return combined(self.combiners_[head], stack_features(head, embedding, text), embedding.shape[1])


def main() -> None:
    params = dict(R.CANDIDATES["embedding+text"], cache_dir=R.CACHE)
    makers = {"averaged": lambda: RuptureCoder(**params), "stacked": lambda: StackedCoder(**params)}
    R.experiment_main(__doc__.split("\n")[0], OUT, makers, {
        "base": "embedding+text", "combiner": "logistic regression (C=1) over the embedding head's and the text "
                                             "view's out-of-fold log-probabilities (client) or log-odds (repair)"})


if __name__ == "__main__":
    main()
