"""pipeline.modeling.estimator: RuptureCoder as a scikit-learn estimator, its scores and its decisions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC

from pipeline.modeling.estimator import RUPTURE_CLASSES, RuptureCoder, _uncertainty, gold_arrays
from pipeline.modeling.heads import raw_scores as _raw_scores
from pipeline.codebook import load_codebook
from pipeline.errors import ConfigError, LabelError
from pipeline.records import Annotation

PARAMS = dict(embedder="hashing.v1", head="svm", C=0.5, cv=2, context=False, cues=True,
              cache_dir="/nowhere", random_state=3, text_view=True, session_stage=True, corpus_threshold=True, cv_repeats=2,
              text_reply=True, repair_reply=True, repair_marks=True)


def relabel(sessions, keep=lambda a: True, code=lambda a: a.code):
    """Sessions with annotations filtered by ``keep`` and recoded by ``code`` (new objects)."""
    return [replace(s, annotations=tuple(replace(a, code=code(a)) for a in s.annotations if keep(a)))
            for s in sessions]


def learned(model) -> set[str]:
    return {k for k in vars(model) if k.endswith("_") and not k.startswith("_")}


# --- the estimator contract -----------------------------------------------------------------


def test_classify_init_stores_params_only():
    model = RuptureCoder(**PARAMS)
    assert vars(model) == PARAMS
    assert model.get_params() == PARAMS


def test_classify_set_params_and_clone():
    model = RuptureCoder(embedder="hashing.v1")
    assert model.set_params(C=2.0, cv=4) is model
    assert model.C == 2.0 and model.cv == 4
    twin = clone(model)
    assert twin is not model and twin.get_params() == model.get_params()


def test_classify_clone_of_a_fitted_model_is_unfitted(fitted):
    twin = clone(fitted)
    assert not learned(twin)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        twin.predict_proba([])


def test_classify_fit_returns_self_and_learned_attributes_end_in_underscore(train_sessions):
    model = RuptureCoder(embedder="hashing.v1", cv=2)
    before = dict(vars(model))
    assert model.fit(train_sessions) is model
    new = set(vars(model)) - set(before)
    assert new and all(k.endswith("_") for k in new), new
    assert {k: vars(model)[k] for k in before} == before  # parameters untouched
    assert {"rupture_model_", "rupture_threshold_", "marker_model_", "repair_model_",
            "strategy_model_", "has_repair_", "scheme_"} <= new


@pytest.mark.parametrize("method", ["predict_proba", "decide"])
def test_classify_not_fitted_error_before_fit(train_sessions, method):
    model = RuptureCoder(embedder="hashing.v1")
    args = [train_sessions] if method == "predict_proba" else [train_sessions[0], None]
    with pytest.raises(NotFittedError, match="RuptureCoder is not fitted yet; call fit"):
        getattr(model, method)(*args)


def test_classify_fit_without_labelled_client_turns(train_sessions):
    unlabelled = relabel(train_sessions, keep=lambda a: a.layer not in ("rupture", "markers"))
    with pytest.raises(LabelError, match=r"needs labelled client turns with and without ruptures; "
                                         r"found 0 labelled client turns"):
        RuptureCoder(embedder="hashing.v1", cv=2).fit(unlabelled)


def test_classify_fit_with_one_class_only(train_sessions):
    all_none = relabel(train_sessions, keep=lambda a: a.layer != "markers",
                       code=lambda a: "none" if a.layer == "rupture" else a.code)
    with pytest.raises(LabelError, match=r"with and without ruptures; found \d+ labelled client turns"):
        RuptureCoder(embedder="hashing.v1", cv=2).fit(all_none)


def test_classify_fit_on_one_session(train_sessions):
    with pytest.raises(LabelError, match=r"too few sessions to cross-validate; expected at least 2 "
                                         r"labelled sessions; found 1"):
        RuptureCoder(embedder="hashing.v1", cv=5).fit(train_sessions[:1])


def test_classify_cv_below_two(train_sessions):
    with pytest.raises(ConfigError, match=r"cv must be at least 2 .*; found cv=1"):
        RuptureCoder(embedder="hashing.v1", cv=1).fit(train_sessions)


def test_classify_model_annotations_are_not_gold(train_sessions):
    as_model = relabel(train_sessions, code=lambda a: a.code)
    as_model = [replace(s, annotations=tuple(replace(a, source="model:x@1") for a in s.annotations))
                for s in as_model]
    with pytest.raises(LabelError, match="found 0 labelled client turns"):
        RuptureCoder(embedder="hashing.v1", cv=2).fit(as_model)


def test_classify_unknown_head(train_sessions):
    with pytest.raises(ConfigError, match=r"unknown head 'forest'; expected one of logreg, svm, hgb"):
        RuptureCoder(embedder="hashing.v1", head="forest", cv=2).fit(train_sessions)


# --- scores ---------------------------------------------------------------------------------


def test_classify_gold_arrays(build):
    session = build("g", [("T", "a"), ("C", "b"), ("T", "c")],
                    [(1, "rupture", "withdrawal"), (1, "markers", "withdrawal.denial"),
                     (2, "repair", "repair"), (2, "strategies", "repair.link_pattern")])
    session = session.with_annotations([Annotation("g", 0, "repair", "repair", 0.9, "model:m@1")])
    gold = gold_arrays(session, load_codebook())
    assert gold["rupture"] == [None, "withdrawal", None]
    assert gold["markers"][1] == {"withdrawal.denial"}
    assert gold["repair"] == [None, None, "repair"]  # the model's code on turn 0 is not gold


def test_classify_predict_proba_shapes_and_nan_for_other_roles(fitted, build):
    session = build("p", [("T", "hello there"), ("I", "hola"), ("C", "whatever work"), ("T", "sorry"),
                          ("C", "pointless week")])
    (scores,) = fitted.predict_proba([session])
    book = load_codebook()
    assert scores.session_id == "p"
    assert scores.rupture.shape == (5, 3) and scores.markers.shape == (5, len(book.markers))
    assert scores.repair.shape == (5,) and scores.strategies.shape == (5, len(book.strategies))
    client, therapist, other = [2, 4], [0, 3], [1]
    assert np.isnan(scores.rupture[therapist + other]).all()
    assert np.isnan(scores.markers[therapist + other]).all()
    assert np.isnan(scores.repair[client + other]).all()
    assert np.isnan(scores.strategies[client + other]).all()
    assert np.isfinite(scores.rupture[client]).all() and np.isfinite(scores.repair[therapist]).all()
    np.testing.assert_allclose(scores.rupture[client].sum(axis=1), 1.0)
    assert ((scores.repair[therapist] >= 0) & (scores.repair[therapist] <= 1)).all()


def test_classify_predict_proba_writes_nothing(fitted, test_sessions):
    before = [s.annotations for s in test_sessions]
    fitted.predict_proba(test_sessions)
    assert [s.annotations for s in test_sessions] == before


def test_classify_decide_codes_are_consistent(fitted, test_sessions):
    n_rupture = n_repair = 0
    for session, scores in zip(test_sessions, fitted.predict_proba(test_sessions)):
        decisions = fitted.decide(session, scores)
        assert [d.turn for d in decisions] == [t.index for t in session.turns]
        for turn, d in zip(session.turns, decisions):
            assert 0.0 <= d.uncertainty <= 1.0
            if turn.speaker_role == "client":
                assert d.rupture in RUPTURE_CLASSES and d.repair is None
                if d.rupture == "none":
                    assert d.markers == ()
                else:
                    n_rupture += 1
                    assert any(m.startswith(d.rupture + ".") for m, _ in d.markers), d
            else:
                assert d.rupture is None and d.repair in ("none", "repair")
                if d.repair == "repair":
                    n_repair += 1
                    assert len(d.strategies) >= 1
                else:
                    assert d.strategies == ()
    assert n_rupture and n_repair


def test_classify_decide_always_gives_a_marker_of_the_family(fitted, build):
    """Even when no marker clears its threshold, a rupture gets its family's best marker."""
    session = build("d", [("T", "so"), ("C", "pointless whatever")])
    (scores,) = fitted.predict_proba([session])
    for rupture in ([0.0, 1.0, 0.0], [0.0, 0.0, 1.0]):
        scores.rupture[1] = rupture
        scores.markers[1] = 0.0
        (_, d) = fitted.decide(session, scores)
        assert d.rupture in ("withdrawal", "confrontation")
        assert [m for m, _ in d.markers if m.startswith(d.rupture + ".")], d


def test_classify_repair_without_strategy_scores_still_gets_one(fitted, build):
    session = build("d", [("C", "whatever"), ("T", "sorry")])
    (scores,) = fitted.predict_proba([session])
    scores.repair[1] = 1.0
    scores.strategies[1] = 0.0
    d = fitted.decide(session, scores)[1]
    assert d.repair == "repair" and len(d.strategies) == 1


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5, 0.93, 1.0])
def test_classify_uncertainty_is_one_at_the_threshold(threshold):
    assert _uncertainty(threshold, threshold) == 1.0
    for p in np.linspace(0, 1, 21):
        assert 0.0 <= _uncertainty(float(p), threshold) <= 1.0
    if 0 < threshold < 1:
        assert _uncertainty(0.0, threshold) == 0.0 and _uncertainty(1.0, threshold) == 0.0


def test_classify_uncertainty_at_the_threshold_in_decide(fitted, build):
    session = build("u", [("T", "so"), ("C", "work week")])
    (scores,) = fitted.predict_proba([session])
    t = fitted.rupture_threshold_
    scores.rupture[1] = [1 - t, t / 2, t / 2]
    assert fitted.decide(session, scores)[1].uncertainty == pytest.approx(1.0)


# --- learning -------------------------------------------------------------------------------


def _rupture_f1(model, sessions) -> float:
    gold, pred = [], []
    book = load_codebook()
    for session, scores in zip(sessions, model.predict_proba(sessions)):
        g = gold_arrays(session, book)["rupture"]
        for d in model.decide(session, scores):
            if d.rupture is not None:
                gold.append(g[d.turn] != "none")
                pred.append(d.rupture != "none")
    return f1_score(gold, pred)


@pytest.mark.parametrize("head", ["logreg", "svm"])
def test_classify_learns_the_rupture_keyword(train_sessions, test_sessions, head):
    model = RuptureCoder(embedder="hashing.v1", head=head, cv=3).fit(train_sessions)
    assert _rupture_f1(model, test_sessions) >= 0.8
    types = [(d.rupture, s.turns[d.turn].clean_text.split())
             for s, sc in zip(test_sessions, model.predict_proba(test_sessions))
             for d in model.decide(s, sc) if d.rupture not in (None, "none")]
    keyword = {"withdrawal": "whatever", "confrontation": "pointless"}
    right = [keyword[code] in words for code, words in types if {"whatever", "pointless"} & set(words)]
    assert len(right) >= 10 and sum(right) / len(right) >= 0.8


def test_classify_fit_is_deterministic(train_sessions, test_sessions, fitted):
    again = RuptureCoder(embedder="hashing.v1", cv=3).fit(train_sessions)
    for a, b in zip(fitted.predict_proba(test_sessions), again.predict_proba(test_sessions)):
        np.testing.assert_array_equal(a.rupture, b.rupture)
        np.testing.assert_array_equal(a.strategies, b.strategies)
    assert again.rupture_threshold_ == fitted.rupture_threshold_


@pytest.mark.parametrize("head", ["logreg", "svm"])
def test_classify_fit_without_confrontation_examples(train_sessions, test_sessions, head):
    """Training data with one rupture type still scores all three classes."""
    only_withdrawal = relabel(
        train_sessions, keep=lambda a: a.layer != "markers" or a.code.startswith("withdrawal"),
        code=lambda a: "withdrawal" if a.code == "confrontation" else a.code)
    model = RuptureCoder(embedder="hashing.v1", head=head, cv=2).fit(only_withdrawal)
    scores = model.predict_proba(test_sessions[:2])
    client = ~np.isnan(scores[0].rupture[:, 0])
    np.testing.assert_allclose(scores[0].rupture[client].sum(axis=1), 1.0)
    assert (scores[0].rupture[client, 2] < 0.01).all()


def test_classify_raw_scores_of_a_two_class_svm_in_a_three_class_problem():
    """A fold that saw two of the three rupture classes still gives one column per class."""
    X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 2, 2])
    svm = LinearSVC().fit(X, y)
    raw = _raw_scores(svm, X, (0, 1, 2))
    assert raw.shape == (4, 3)
    np.testing.assert_allclose(raw[:, 2], svm.decision_function(X))
    np.testing.assert_allclose(raw[:, 0], -svm.decision_function(X))
    assert (raw[:, 1] == -10.0).all()


def test_classify_fit_when_ruptures_are_in_one_session_only(train_sessions):
    """A cross-validation fold whose training part has no rupture does not crash fit."""
    calm = relabel(train_sessions[1:], keep=lambda a: a.layer not in ("markers", "strategies"),
                   code=lambda a: "none" if a.layer in ("rupture", "repair") else a.code)
    model = RuptureCoder(embedder="hashing.v1", cv=3).fit([train_sessions[0], *calm])
    (scores,) = model.predict_proba(train_sessions[:1])
    client = ~np.isnan(scores.rupture[:, 0])
    np.testing.assert_allclose(scores.rupture[client].sum(axis=1), 1.0)


def test_classify_fit_without_repair_labels(train_sessions, test_sessions):
    no_repair = relabel(train_sessions, keep=lambda a: a.layer in ("rupture", "markers"))
    model = RuptureCoder(embedder="hashing.v1", cv=2).fit(no_repair)
    assert model.has_repair_ is False
    session = test_sessions[0]
    decisions = model.decide(session, model.predict_proba([session])[0])
    assert {d.repair for d in decisions if d.repair is not None} == {"none"}
