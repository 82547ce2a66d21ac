"""Do the codes transfer better when every training corpus weighs the same? (issue 12, an experiment)

The pool's corpora differ in size by an order of magnitude (AnnoMI and HLQC have most of the
turns, Rogers five sessions), so the default's heads learn mostly what the largest corpora call a
rupture. Weighting each training turn by its corpus's size is label-free with respect to the test
corpus and changes nothing at coding time. Candidates, on the same leave-one-corpus-out splits and
reference check as ``train_default.py`` (its functions are imported):

- ``as trained``: the default's configuration (``embedding+text``), every turn weight 1 (its
  figures: ``style_transfer.json``'s ``as transcribed``, the same configuration and pool);
- ``corpus-balanced``: the rupture and repair heads and their TF-IDF views fitted with sample
  weights ``n / (K * n_c)`` (``n_c`` the labelled turns of the turn's corpus, ``K`` corpora, so
  each corpus weighs the same in total);
- ``corpus-balanced square root``: weights ``proportional to n_c ** -0.5`` (half-way: a tiny
  corpus is not blown up to the weight of a large one), scaled to mean 1.

Both weightings were fixed before the run; calibrators, thresholds (the corpus median, as the
default), markers and strategies are fitted as in the default. Run from the repository root
(about 10 minutes on 2 cores, embeddings cached):

    python models/recipes/corpus_balance.py   # writes models/recipes/results/corpus_balance.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_default as R  # noqa: E402

from pipeline.modeling.estimator import RuptureCoder, _corpus  # noqa: E402
from pipeline.modeling.heads import fit_calibrated, make_head  # noqa: E402

OUT = ROOT / "models" / "recipes" / "results" / "corpus_balance.json"


def corpus_weights(corpora: np.ndarray, power: float) -> np.ndarray:
    """Per row ``n_c ** -power`` for the row's corpus ``c``, scaled to mean 1 (power 1: every
    corpus the same total weight)."""
    names, index, counts = np.unique(corpora, return_inverse=True, return_counts=True)
    w = counts[index].astype(float) ** -power
    return w * len(w) / w.sum()


class CorpusBalancedCoder(RuptureCoder):
    """The default estimator with its rupture and repair heads (and their TF-IDF views) fitted
    with corpus weights of power ``POWER``."""

    POWER = 1.0

    def _client_rows(self, sessions, feats, golds):
        out = super()._client_rows(sessions, feats, golds)
        self.w_client_ = corpus_weights(np.array([_corpus(sessions[si]) for si, _ in out[4]]), self.POWER)
        return out

    def _therapist_rows(self, sessions, feats, golds):
        out = super()._therapist_rows(sessions, feats, golds)
        self.w_therapist_ = corpus_weights(np.array([_corpus(sessions[si]) for si in out[3]]), self.POWER)
        return out

    def _weights(self, classes) -> np.ndarray:
        return self.w_client_ if len(classes) == 3 else self.w_therapist_

    def _fit_calibrated(self, X, y, folds, classes, calibrate_on=None):
        return fit_calibrated(make_head(self.head, self.C, self.random_state), X, y, folds, classes, calibrate_on,
                              sample_weight=self._weights(classes))

    def _fit_text(self, texts, y, folds, classes, sample_weight=None):
        return super()._fit_text(texts, y, folds, classes, self._weights(classes))


class SquareRootBalancedCoder(CorpusBalancedCoder):
    POWER = 0.5


def main() -> None:
    params = dict(R.CANDIDATES["embedding+text"], cache_dir=R.CACHE)
    makers = {"as trained": lambda: RuptureCoder(**params), "corpus-balanced": lambda: CorpusBalancedCoder(**params),
              "corpus-balanced square root": lambda: SquareRootBalancedCoder(**params)}
    R.experiment_main(__doc__.split("\n")[0], OUT, makers, {
        "base": "embedding+text", "weights": "n_c ** -power scaled to mean 1 over the labelled turns of each head; "
                                             "power 1 and 0.5"}, default=["corpus-balanced", "corpus-balanced square root"])


if __name__ == "__main__":
    main()
