"""The candidates of models/recipes/style_transfer.py (fast: synthetic sessions, hashing embedder)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from style_transfer import (CharNgramCoder, CharTextView, SessionCentredCoder, StyleNormalisedCoder,  # noqa: E402
                            asr_style, normalised)

from pipeline.modeling.context import TextView  # noqa: E402
from pipeline.modeling.estimator import RuptureCoder  # noqa: E402

PARAMS = dict(embedder="hashing.v1", cv=3, text_view=True, corpus_threshold=False)


@pytest.mark.parametrize("text,expected", [
    ("Well, I don\u2019t know... Why?", "well i don't know why"),
    ("'Cause it's 'fine'", "cause it's fine"),
    ("  Mm-hmm.  (laughs) ", "mm hmm laughs"),
    ("uh huh yeah", "uh huh yeah"),
])
def test_asr_style(text, expected):
    assert asr_style(text) == expected


def test_style_normalised_coder_is_the_default_on_normalised_sessions(train_sessions, test_sessions):
    styled = StyleNormalisedCoder(**PARAMS).fit(train_sessions)
    plain = RuptureCoder(**PARAMS).fit([normalised(s) for s in train_sessions])
    a = styled.predict_proba(test_sessions[:2])
    b = plain.predict_proba([normalised(s) for s in test_sessions[:2]])
    assert all(np.array_equal(x.rupture, y.rupture, equal_nan=True) for x, y in zip(a, b))
    assert all(t.clean_text == asr_style(t.clean_text) for t in normalised(test_sessions[0]).turns)


def test_char_ngram_coder_fits_its_view_and_leaves_the_default_alone(train_sessions, test_sessions):
    model = CharNgramCoder(**PARAMS).fit(train_sessions)
    assert isinstance(model.text_model_, CharTextView) and isinstance(model.repair_text_model_, CharTextView)
    assert type(RuptureCoder(**PARAMS).fit(train_sessions).text_model_) is TextView
    (scores,) = model.predict_proba(test_sessions[:1])
    client = [t.index for t in test_sessions[0].turns if t.speaker_role == "client"]
    assert np.allclose(scores.rupture[client].sum(axis=1), 1.0)


def test_session_centred_coder_centres_each_session(train_sessions):
    model = SessionCentredCoder(**{**PARAMS, "context": False, "cues": False})
    feats = model._features(train_sessions[:2])
    assert all(np.allclose(f.mean(axis=0), 0.0, atol=1e-6) for f in feats)
    shifted = replace(train_sessions[0], turns=train_sessions[0].turns[1:])
    assert not np.allclose(model._features([shifted])[0], feats[0][1:])  # the mean is the session's own
