"""Repeated session-grouped folds (``RuptureCoder(cv_repeats=...)``): every draw partitions the
rows by session, out-of-fold scores are averaged over the draws, and the fitted model does not
depend on the order of its training sessions; one draw keeps the old folds exactly."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.modeling.estimator import RuptureCoder
from pipeline.modeling.heads import mean_over_draws, repeated_group_folds

from test_session_aware import AWARE, with_corpus

REPEATS = 3


def test_each_draw_partitions_the_rows_and_keeps_a_group_in_one_fold():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 20, 300)
    names = [f"s{g}" for g in range(20)]
    folds = repeated_group_folds(groups, names, 3, 4, seed=0)
    assert len(folds) == 12
    for draw in range(4):
        tests = [te for _, te in folds[3 * draw:3 * draw + 3]]
        assert sorted(np.concatenate(tests)) == list(range(300))
        for tr, te in folds[3 * draw:3 * draw + 3]:
            assert not set(groups[tr]) & set(groups[te])
            assert len(te) > 50  # balanced by rows: no fold near empty
    draws = [tuple(sorted(set(groups[folds[3 * d][1]]))) for d in range(4)]
    assert len(set(draws)) > 1  # the draws differ


def test_the_folds_follow_the_groups_names_not_the_rows_order():
    groups = np.repeat(np.arange(10), [3, 5, 2, 4, 6, 1, 3, 2, 5, 4])
    names = [f"session-{g}" for g in range(10)]
    perm = np.random.default_rng(1).permutation(10)  # the same sessions, numbered in another order
    renumbered = perm[groups]
    names2 = [None] * 10
    for g in range(10):
        names2[perm[g]] = names[g]
    a = repeated_group_folds(groups, names, 3, 2, seed=0)
    b = repeated_group_folds(renumbered, names2, 3, 2, seed=0)
    held_a = [sorted(names[g] for g in set(groups[te])) for _, te in a]
    held_b = [sorted(names2[g] for g in set(renumbered[te])) for _, te in b]
    assert held_a == held_b


def test_mean_over_draws_averages_and_leaves_one_draw_alone():
    folds = [(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))] * 2
    summed = np.array([[2.0, 4.0], [1.0, 1.0], [0.5, 0.5], [3.0, 1.0]])
    assert np.array_equal(mean_over_draws(summed.copy(), folds), summed / 2)
    once = np.array([[0.1, 0.9], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    assert mean_over_draws(once.copy(), folds[:2]).tobytes() == once.tobytes()


@pytest.fixture(scope="module")
def corpora(train_sessions, test_sessions):
    return with_corpus(train_sessions + test_sessions, ["alpha", "beta"])


def test_a_model_with_repeated_folds_does_not_depend_on_the_sessions_order(corpora, test_sessions):
    shuffled = random.Random(3).sample(corpora, len(corpora))
    a = RuptureCoder(**AWARE, cv_repeats=REPEATS).fit(corpora)
    b = RuptureCoder(**AWARE, cv_repeats=REPEATS).fit(shuffled)
    assert a.rupture_threshold_ == pytest.approx(b.rupture_threshold_, abs=1e-5)
    assert a.repair_threshold_ == pytest.approx(b.repair_threshold_, abs=1e-5)
    for x, y in zip(a.predict_proba(test_sessions[:3]), b.predict_proba(test_sessions[:3])):
        assert np.allclose(np.nan_to_num(x.rupture), np.nan_to_num(y.rupture), atol=1e-5)
        assert np.allclose(np.nan_to_num(x.repair), np.nan_to_num(y.repair), atol=1e-5)


def test_one_draw_is_the_old_fit_and_old_pickles_load_with_one(corpora, test_sessions):
    old = RuptureCoder(**AWARE).fit(corpora)
    one = RuptureCoder(**AWARE, cv_repeats=1).fit(corpora)
    assert old.rupture_threshold_ == one.rupture_threshold_
    (p_old,), (p_one,) = old.predict_proba(test_sessions[:1]), one.predict_proba(test_sessions[:1])
    assert np.nan_to_num(p_old.rupture).tobytes() == np.nan_to_num(p_one.rupture).tobytes()
    state = pickle.loads(pickle.dumps(old))
    del state.__dict__["cv_repeats"]
    assert pickle.loads(pickle.dumps(state)).cv_repeats == 1


def test_cv_repeats_below_one_is_a_clear_error(corpora):
    with pytest.raises(ConfigError, match="cv_repeats"):
        RuptureCoder(**AWARE, cv_repeats=0).fit(corpora)


def test_a_bundle_keeps_the_repeats_and_a_retrain_from_it_inherits_them(corpora, test_sessions, tmp_path):
    import json

    from pipeline.modeling.bundle import load_bundle, save_bundle

    model = RuptureCoder(**AWARE, cv_repeats=2).fit(corpora)
    manifest = {"scheme": "rupture_v1@1.0.0", "recipe": "test", "counts": {"sessions": 1, "turns": 1},
                "files": [], "warnings": 0}
    path = save_bundle(model, tmp_path / "models" / "r" / "0.1.0", "r", "0.1.0", manifest)
    assert json.loads((path / "config.json").read_text())["cv_repeats"] == 2
    loaded = load_bundle(path)
    assert loaded.model.get_params()["cv_repeats"] == 2  # what `train --base-model` starts from
    (a,), (b,) = model.predict_proba(test_sessions[:1]), loaded.model.predict_proba(test_sessions[:1])
    assert np.allclose(np.nan_to_num(a.rupture), np.nan_to_num(b.rupture))
