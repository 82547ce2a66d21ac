"""The blend hook of the estimator (embedding head and TF-IDF view) and the stacked combiner of
models/recipes/stacked_views.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from stacked_views import StackedCoder, stack_features  # noqa: E402

from pipeline.modeling.estimator import RuptureCoder  # noqa: E402

PARAMS = dict(embedder="hashing.v1", cv=3, text_view=True, corpus_threshold=False)


class TextOnly(RuptureCoder):
    """Takes the text view's probabilities alone: shows that every combination goes through _blend."""

    def _blend(self, head, embedding, text):
        return text


def test_scores_combine_the_two_sources_only_through_the_blend_hook(train_sessions, test_sessions):
    session = test_sessions[0]
    model = TextOnly(**PARAMS).fit(train_sessions)
    (scores,) = model.predict_proba([session])
    client = [t.index for t in session.turns if t.speaker_role == "client"]
    therapist = [t.index for t in session.turns if t.speaker_role == "therapist"]
    from pipeline.modeling.context import exchange_text

    text_c = model.text_model_.predict_proba([exchange_text(session, i) for i in client], (0, 1, 2))
    text_t = model.repair_text_model_.predict_proba([exchange_text(session, i) for i in therapist], (0, 1))
    assert np.array_equal(scores.rupture[client], text_c)
    assert np.array_equal(scores.repair[therapist], text_t[:, 1])
    mean = RuptureCoder(**PARAMS).fit(train_sessions)
    assert not np.array_equal(mean.predict_proba([session])[0].rupture[client], text_c)


def test_stack_features_are_log_probabilities_or_log_odds():
    e = np.array([[0.5, 0.25, 0.25]])
    t = np.array([[0.8, 0.1, 0.1]])
    assert np.allclose(stack_features("rupture", e, t), np.log(np.hstack([e, t])))
    assert np.allclose(stack_features("repair", np.array([[0.75, 0.25]]), np.array([[0.5, 0.5]])),
                       [[np.log(1 / 3), 0.0]])


def test_stacked_coder_learns_a_combiner_per_head_and_scores_are_probabilities(train_sessions, test_sessions):
    model = StackedCoder(**PARAMS).fit(train_sessions)
    assert set(model.combiners_) == {"rupture", "repair"}
    assert model.combiners_["rupture"].coef_.shape == (3, 6) and model.combiners_["repair"].coef_.shape == (1, 2)
    (scores,) = model.predict_proba(test_sessions[:1])
    client = [t.index for t in test_sessions[0].turns if t.speaker_role == "client"]
    assert np.allclose(scores.rupture[client].sum(axis=1), 1.0)
    assert 0 < model.rupture_threshold_ < 1
    mean = RuptureCoder(**PARAMS).fit(train_sessions)
    assert not np.allclose(mean.predict_proba(test_sessions[:1])[0].rupture[client], scores.rupture[client])


def test_default_blend_is_the_mean():
    e, t = np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]])
    assert np.array_equal(RuptureCoder()._blend("repair", e, t), (e + t) / 2)
    with pytest.raises(AttributeError):
        StackedCoder()._blend("repair", e, t)  # a stacked coder blends only after fitting its combiners
