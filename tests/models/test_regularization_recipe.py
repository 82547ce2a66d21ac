"""The candidates of ``models/recipes/regularization.py`` (issue 12): 2.1.0's configuration with
one view regularised 4x more strongly, everything else unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
from regularization import DEFAULT, FACTOR, HEADS_C, MAKERS, TEXT_C, StrongerTextView  # noqa: E402
from train_default import CANDIDATES  # noqa: E402

from pipeline.modeling.context import TextView  # noqa: E402


def test_each_candidate_differs_from_the_shipped_configuration_in_one_strength_only():
    shipped = CANDIDATES["embedding+text+repair-marks"]
    assert MAKERS[DEFAULT] == shipped and MAKERS[TEXT_C] == shipped and shipped["repair_marks"]
    heads = dict(MAKERS[HEADS_C])
    assert heads.pop("C") == shipped["C"] / FACTOR and heads == {k: v for k, v in shipped.items() if k != "C"}
    assert FACTOR == 4


def test_the_text_view_candidate_fits_its_views_at_a_quarter_of_the_shipped_strength(train_sessions, test_sessions):
    params = dict(MAKERS[TEXT_C], embedder="hashing.v1")
    model = StrongerTextView(**params).fit(train_sessions)
    for view in (model.text_model_, model.repair_text_model_):
        assert view.C == TextView().C / FACTOR
        assert view.model_[-1].C == TextView().C / FACTOR  # the logistic regression itself
    (scores,) = model.predict_proba(test_sessions[:1])
    client = [t.index for t in test_sessions[0].turns if t.speaker_role == "client"]
    assert np.allclose(scores.rupture[client].sum(axis=1), 1.0)
