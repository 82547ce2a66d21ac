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


def test_held_out_f1_codes_each_session_with_the_threshold_set_on_the_others():
    from sklearn.metrics import f1_score

    from pipeline.modeling.adapt import held_out_f1

    rng = np.random.default_rng(3)
    sessions = np.repeat(np.array(["a", "b", "c"]), 40)
    y = (rng.random(120) < 0.3).astype(int)
    p = np.clip(0.35 * y + rng.random(120) * 0.7, 0, 1)
    expected = np.zeros(120, dtype=bool)
    for s in "abc":
        out = sessions == s
        expected[out] = p[out] >= best_threshold(y[~out], p[~out])
    before, after = held_out_f1(y, p, sessions, 0.9)
    assert before == round(f1_score(y, p >= 0.9), 3) and after == round(f1_score(y, expected), 3)
    assert after > before  # a threshold of 0.9 flags almost nothing here
    # left-out sessions whose others hold no positive keep the model's threshold
    y2 = np.where(sessions == "a", y, 0)
    _, after2 = held_out_f1(y2, p, sessions, 0.6)
    kept = p >= 0.6  # session a: b and c hold no positive
    for s in "bc":
        out = sessions == s
        kept[out] = p[out] >= best_threshold(y2[~out], p[~out])
    assert after2 == round(f1_score(y2, kept, zero_division=0), 3)
    assert held_out_f1(y, p, np.array(["a"] * 120), 0.5) is None


def test_a_head_keeps_its_threshold_when_the_held_out_check_fails_or_cannot_run(fitted, test_sessions, monkeypatch):
    import pipeline.modeling.adapt as adapt

    adapted, changes = adapt_thresholds(fitted, test_sessions[:1], min_positives=1)
    assert not any(c.adapted for c in changes if c.positives)
    assert all("one reviewed session" in c.kept_because for c in changes if c.positives)
    adapted, changes = adapt_thresholds(fitted, test_sessions[:1], min_positives=1, held_out_check=False)
    assert any(c.adapted for c in changes) and all(c.held_out_before is None for c in changes)
    monkeypatch.setattr(adapt, "held_out_f1", lambda y, p, s, before: (0.5, 0.5))
    adapted, changes = adapt_thresholds(fitted, test_sessions, min_positives=1)
    assert [c.adapted for c in changes] == [False, False]
    assert all("does not beat the model's (F1 0.500 against 0.500)" in c.kept_because for c in changes)
    assert (adapted.rupture_threshold_, adapted.repair_threshold_) == (fitted.rupture_threshold_,
                                                                       fitted.repair_threshold_)
    monkeypatch.setattr(adapt, "held_out_f1", lambda y, p, s, before: (0.5, 0.6))
    _, changes = adapt_thresholds(fitted, test_sessions, min_positives=1)
    assert [c.adapted for c in changes] == [True, True]
    assert [(c.held_out_before, c.held_out_after) for c in changes] == [(0.5, 0.6)] * 2
