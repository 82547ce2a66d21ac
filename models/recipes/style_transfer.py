"""Do the codes transfer better when the model is blind to transcript style? (issue 12, experiments)

The corpora are written in different styles: HLQC is ASR output (lower case, no punctuation),
AnnoMI, HOPE and Rogers are clean transcripts with punctuation. The encoder (all-MiniLM-L6-v2) is
uncased, and the TF-IDF view's tokens ignore punctuation, but the embeddings and the question cue
still see punctuation, so a model trained mostly on one style reads the other style's turns
through a shift that has nothing to do with ruptures. This recipe measures the simplest remedy:
every turn's text is put into the ASR style (lower case; punctuation but in-word apostrophes
removed; typographic apostrophes made plain; spaces collapsed) before the model sees it, in
training and in coding alike, so no corpus's labels are involved in the transform. A second
remedy keeps the texts and adds character n-grams (2-5 within words) to the TF-IDF view of the
exchange beside its word 1- and 2-grams: they match across spelling variants and ASR errors
("mhm", "mm-hmm", "gonna") that word n-grams keep apart. A third removes what is constant
within a session from its embeddings: each turn's vector minus the mean of its session's turn
vectors (label-free and per session, so it is the same at coding time), which takes out the
session's topic, speakers' style and recording as far as they are shared by all its turns, and
keeps how a turn differs from the rest of its session.

Candidates, on the same leave-one-corpus-out splits and reference check as ``train_default.py``
(its functions are imported):
- ``as transcribed``: the default's configuration (``embedding+text``) on the texts as they are;
- ``ASR style``: the same estimator on the style-normalised texts;
- ``character n-grams``: the default's configuration with the TF-IDF view over word and
  character n-grams (both hashed, as the shipped view: a bundle holds no words);
- ``session-centred``: the default's configuration on session-centred embeddings (the turn's,
  and the context turns' in its features; the cues and the TF-IDF view unchanged).

Run from the repository root (about 15-25 minutes on 2 cores; the normalised texts are embedded
once into the embedding cache):

    python models/recipes/style_transfer.py   # writes models/recipes/results/style_transfer.json
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_default as R  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline, make_union  # noqa: E402
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer  # noqa: E402

from pipeline.modeling.context import TextView  # noqa: E402
from pipeline.modeling.embed import embed_cached, get_embedder  # noqa: E402
from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.features import FeatureConfig, session_features, turn_text  # noqa: E402
from pipeline.records import Session  # noqa: E402

OUT = ROOT / "models" / "recipes" / "results" / "style_transfer.json"
_NOT_WORD = re.compile(r"[^\w\s']+")
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")
_SPACES = re.compile(r"\s+")


def asr_style(text: str) -> str:
    """``text`` as an ASR transcript would have it: lower case, no punctuation but apostrophes
    inside words, single spaces."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    text = _LOOSE_APOSTROPHE.sub(" ", _NOT_WORD.sub(" ", text))
    return _SPACES.sub(" ", text).strip()


def normalised(session: Session) -> Session:
    turns = tuple(dataclasses.replace(t, clean_text=asr_style(t.clean_text)) if t.clean_text else t
                  for t in session.turns)
    return dataclasses.replace(session, turns=turns, meta=session.meta)


class StyleNormalisedCoder(RuptureCoder):
    """The default estimator, reading every session in the ASR style (training and coding)."""

    def fit(self, sessions, y=None):
        return super().fit([normalised(s) for s in sessions], y)

    def predict_proba(self, sessions):
        return super().predict_proba([normalised(s) for s in sessions])


class CharTextView(TextView):
    """The shipped TF-IDF view with hashed character n-grams (2-5, within word boundaries) added to
    its word 1- and 2-grams, each part TF-IDF weighted and L2-normalised on its own."""

    def fit(self, texts, y, sample_weight=None):
        def part(**kw):
            return make_pipeline(HashingVectorizer(n_features=2 ** self.n_bits, alternate_sign=False, norm=None,
                                                   dtype=np.float32, **kw), TfidfTransformer(sublinear_tf=True))

        self.model_ = make_pipeline(make_union(part(ngram_range=(1, 2)), part(analyzer="char_wb", ngram_range=(2, 5))),
                                    LogisticRegression(C=self.C, class_weight="balanced", max_iter=3000))
        self.model_.fit(texts, y, **({} if sample_weight is None else {"logisticregression__sample_weight": sample_weight}))
        return self


class CharNgramCoder(RuptureCoder):
    """The default estimator with :class:`CharTextView` as its text view (fitting and scoring)."""

    @staticmethod
    def _text_view() -> TextView:
        return CharTextView()


class SessionCentredCoder(RuptureCoder):
    """The default estimator on embeddings centred per session (training and coding)."""

    def _features(self, sessions):
        vectors = embed_cached([turn_text(t) for s in sessions for t in s.turns], get_embedder(self.embedder),
                               self.cache_dir)
        config, out, start = FeatureConfig(self.context, self.cues), [], 0
        for s in sessions:
            v = vectors[start:start + len(s.turns)]
            out.append(session_features(s, v - v.mean(axis=0, keepdims=True), config))
            start += len(s.turns)
        return out


def main() -> None:
    params = dict(R.CANDIDATES["embedding+text"], cache_dir=R.CACHE)
    makers = {"as transcribed": lambda: RuptureCoder(**params), "ASR style": lambda: StyleNormalisedCoder(**params),
              "character n-grams": lambda: CharNgramCoder(**params),
              "session-centred": lambda: SessionCentredCoder(**params)}
    R.experiment_main(__doc__.split("\n")[0], OUT, makers, {
        "base": "embedding+text", "style": "lower case, punctuation removed but in-word apostrophes, spaces collapsed",
        "character n-grams": "char_wb 2-5, hashed 2**16, TF-IDF sublinear, beside word 1-2-grams",
        "session-centred": "turn embeddings minus their session's mean turn embedding"})


if __name__ == "__main__":
    main()
