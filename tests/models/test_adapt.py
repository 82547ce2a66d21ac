"""Thresholds adapted to reviewed sessions (pipeline/modeling/adapt.py; `rupture-coder adapt`)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.modeling.adapt import adapt_thresholds
from pipeline.modeling.context import best_threshold
from pipeline.modeling.evaluate import collect


def test_thresholds_become_the_f1_best_on_the_reviewed_turns_and_the_model_is_not_changed(fitted, test_sessions):
    before = (fitted.rupture_threshold_, fitted.repair_threshold_)
    adapted, changes = adapt_thresholds(fitted, test_sessions, min_positives=1)
    assert (fitted.rupture_threshold_, fitted.repair_threshold_) == before  # a copy was adapted
    c = collect(fitted, test_sessions)
    y = (np.array(c["c_gold"]) != "none").astype(int)
    p = 1 - np.array(c["c_prob"])[:, 0]
    rupture, repair = changes
    assert rupture.adapted and rupture.after == best_threshold(y, p) == adapted.rupture_threshold_
    assert (rupture.reviewed_turns, rupture.positives, rupture.before) == (len(y), int(y.sum()), before[0])
    assert rupture.turns_in_sessions == sum(t.speaker_role == "client" for s in test_sessions for t in s.turns)
    ty = (np.array(c["t_gold"]) == "repair").astype(int)
    assert repair.adapted and repair.after == best_threshold(ty, np.array(c["t_prob"])) == adapted.repair_threshold_
    assert rupture.f1_after == pytest.approx(2 * ((p >= rupture.after) & (y == 1)).sum()
                                             / ((p >= rupture.after).sum() + y.sum()), abs=1e-3)
    # the adapted copy codes with its own thresholds
    flagged = sum(d.rupture not in (None, "none") for s in test_sessions
                  for d in adapted.decide(s, adapted.predict_proba([s])[0]))
    assert flagged == int((p >= rupture.after).sum())


def test_a_head_with_too_few_reviewed_positives_keeps_its_threshold(fitted, test_sessions):
    adapted, changes = adapt_thresholds(fitted, test_sessions, min_positives=10**6)
    assert [c.adapted for c in changes] == [False, False]
    assert all("at least 1000000 are needed" in c.kept_because for c in changes)
    assert (adapted.rupture_threshold_, adapted.repair_threshold_) == (fitted.rupture_threshold_,
                                                                       fitted.repair_threshold_)
    assert [c.after for c in changes] == [c.before for c in changes]
    with pytest.raises(ConfigError, match="at least 1"):
        adapt_thresholds(fitted, test_sessions, min_positives=0)
