"""pipeline.modeling.evaluate: metrics from collected arrays, and session-grouped cross-validation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, cohen_kappa_score, f1_score

from pipeline.modeling.estimator import RuptureCoder
from pipeline.codebook import load_codebook
from pipeline.errors import ConfigError, LabelError
from pipeline.episodes import CodedTurn, episodes, segments, session_ratings
from pipeline.modeling.evaluate import (collect, cross_validate, expected_calibration_error, merge_collected,
                               metrics_markdown, score)

BOOK = load_codebook()
CLASSES = ["none", "withdrawal", "confrontation"]


def onehot(codes, vocabulary) -> list[bool]:
    return [v in codes for v in vocabulary]


@pytest.fixture
def collected() -> dict:
    c_gold = ["none", "withdrawal", "confrontation", "none", "withdrawal", "none", "confrontation", "none"]
    c_pred = ["none", "withdrawal", "withdrawal", "withdrawal", "none", "none", "confrontation", "none"]
    c_prob = [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.4, 0.3], [0.4, 0.5, 0.1],
              [0.6, 0.3, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.55, 0.2, 0.25]]
    w, c = "withdrawal.minimal_response", "confrontation.complaint_progress"
    mgold = [(), (w,), (c,), (), (w,), (), (c, w), ()]
    mpred = [(), (w,), (w,), (w,), (), (), (c,), ()]
    t_gold = ["none", "repair", "repair", "none", "none"]
    t_pred = ["none", "repair", "none", "repair", "none"]
    s = "repair.invite_exploration"
    return {
        "c_gold": c_gold, "c_pred": c_pred, "c_prob": c_prob,
        "c_mgold": [onehot(m, BOOK.markers) for m in mgold],
        "c_mpred": [onehot(m, BOOK.markers) for m in mpred],
        "c_session": ["a"] * 4 + ["b"] * 4,
        "t_gold": t_gold, "t_pred": t_pred, "t_prob": [0.1, 0.9, 0.4, 0.6, 0.2],
        "t_sgold": [onehot(x, BOOK.strategies) for x in [(), (s,), (s,), (), ()]],
        "t_spred": [onehot(x, BOOK.strategies) for x in [(), (s,), (), (s,), ()]],
        "t_session": ["a", "a", "b", "b", "c"],
    }


def test_evaluate_score_matches_sklearn(collected):
    m = score(collected)
    gold, pred = np.array(collected["c_gold"]), np.array(collected["c_pred"])
    prob = np.array(collected["c_prob"])
    cl = m["client"]
    assert cl["n_turns"] == 8 and cl["n_sessions"] == 2
    assert cl["macro_f1"] == pytest.approx(f1_score(gold, pred, labels=CLASSES, average="macro"))
    assert cl["kappa"] == pytest.approx(cohen_kappa_score(gold, pred))
    assert cl["confusion"]["matrix"] == [[3, 1, 0], [1, 1, 0], [0, 1, 1]]
    y, p = (gold != "none").astype(int), (pred != "none").astype(int)
    rv = cl["rupture_vs_none"]
    assert rv["f1"] == pytest.approx(f1_score(y, p))
    assert rv["kappa"] == pytest.approx(cohen_kappa_score(y, p))
    assert rv["pr_auc"] == pytest.approx(average_precision_score(y, 1 - prob[:, 0]))
    assert rv["support"] == 4 and rv["n"] == 8
    assert cl["per_class"]["confrontation"]["f1"] == pytest.approx(2 / 3)
    w = cl["markers"]["withdrawal.minimal_response"]
    assert (w["precision"], w["recall"], w["support"]) == (pytest.approx(1 / 3), pytest.approx(1 / 3), 3)
    assert cl["markers"]["confrontation.complaint_progress"]["recall"] == pytest.approx(0.5)


def test_evaluate_score_therapist_matches_sklearn(collected):
    th = score(collected)["therapist"]
    y = (np.array(collected["t_gold"]) == "repair").astype(int)
    p = (np.array(collected["t_pred"]) == "repair").astype(int)
    assert th["n_turns"] == 5 and th["n_sessions"] == 3
    assert th["repair"]["f1"] == pytest.approx(f1_score(y, p)) == pytest.approx(0.5)
    assert th["repair"]["kappa"] == pytest.approx(cohen_kappa_score(y, p))
    assert th["repair"]["pr_auc"] == pytest.approx(average_precision_score(y, collected["t_prob"]))
    assert th["confusion"]["matrix"] == [[2, 1], [1, 1]]
    assert th["strategies"]["repair.invite_exploration"]["f1"] == pytest.approx(0.5)
    assert th["strategies"]["repair.link_pattern"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_evaluate_score_of_nothing():
    assert score({"c_gold": [], "t_gold": []}) == {"client": None, "therapist": None}


def test_evaluate_score_without_positives_has_no_pr_auc(collected):
    calm = {**collected, "t_gold": ["none"] * 5}
    assert score(calm)["therapist"]["repair"]["pr_auc"] is None


@pytest.mark.parametrize("y, p, expected", [
    ([0, 1, 1, 1], [0.15, 0.25, 0.75, 0.95], (0.15 + 0.75 + 0.25 + 0.05) / 4),
    ([1, 0], [0.62, 0.68], 0.15),  # one bin: |mean p - mean y|
    ([1, 0, 1], [1.0, 0.0, 1.0], 0.0),  # the ends of the range fall into the end bins
    ([], [], float("nan")),
])
def test_evaluate_expected_calibration_error_by_hand(y, p, expected):
    ece = expected_calibration_error(np.array(y), np.array(p, dtype=float))
    if np.isnan(expected):
        assert np.isnan(ece)
    else:
        assert ece == pytest.approx(expected)


def test_evaluate_merge_collected(collected):
    merged = merge_collected([collected, collected])
    assert len(merged["c_gold"]) == 16 and merged["t_session"][5:] == collected["t_session"]
    assert merge_collected([]) == {}


def test_evaluate_collect_aligns_gold_and_decisions(fitted, test_sessions):
    c = collect(fitted, test_sessions)
    client_gold = [a for s in test_sessions for a in s.annotations if a.layer == "rupture"]
    assert len(c["c_gold"]) == len(c["c_pred"]) == len(c["c_prob"]) == len(client_gold)
    assert len(c["t_gold"]) == sum(1 for s in test_sessions for a in s.annotations if a.layer == "repair")
    assert all(len(row) == len(BOOK.markers) for row in c["c_mgold"])
    assert set(c["c_session"]) == {s.session_id for s in test_sessions}


def test_evaluate_sessions_of_two_corpora_with_one_id_count_apart(fitted, test_sessions):
    """HOPE's session "27" and AnnoMI's "27" are two sessions: n_sessions and the per-session
    counts behind the session-level Spearman must not merge them."""
    a = replace(test_sessions[0], session_id="27", source_format="hope", source_path="hope/27.csv")
    b = replace(test_sessions[1], session_id="27", source_format="annomi", source_path="annomi/dev.csv")
    c = replace(test_sessions[2], session_id="28", source_format="annomi", source_path="annomi/dev.csv")
    m = score(collect(fitted, [a, b, c]))
    assert m["client"]["n_sessions"] == m["therapist"]["n_sessions"] == 3
    assert m["client"]["session_counts"]["sessions"] == 3
    merged = score(merge_collected([collect(fitted, [a]), collect(fitted, [b, c])]))
    assert merged["client"]["n_sessions"] == 3


def test_evaluate_collect_uses_gold_sessions_and_skips_unlabelled_turns(fitted, test_sessions):
    session = test_sessions[0]
    bare = replace(session, annotations=())
    assert collect(fitted, [bare])["c_gold"] == []
    half = replace(session, annotations=tuple(a for a in session.annotations if a.turn < 6))
    c = collect(fitted, [bare], gold_sessions=[half])
    assert len(c["c_gold"]) == 3 and len(c["t_gold"]) == 3


def test_evaluate_cross_validate_keeps_sessions_apart(make_corpus):
    fits, scored = [], []

    class Spy(RuptureCoder):
        def fit(self, sessions, y=None):
            fits.append([s.session_id for s in sessions])
            return super().fit(sessions, y)

        def predict_proba(self, sessions):
            scored.append([s.session_id for s in sessions])
            return super().predict_proba(sessions)

    sessions = make_corpus(6, seed=1)
    extra = make_corpus(2, seed=2, prefix="extra")
    result = cross_validate(sessions, lambda: Spy(embedder="hashing.v1", cv=2), folds=3, extra_train=extra)
    assert result["folds"] == 3 and len(fits) == len(scored) == 3
    for train, test in zip(fits, scored):
        assert not set(train) & set(test)
        assert {"extra00", "extra01"} <= set(train)
        assert len(train) == len(set(train))
    held_out = [sid for test in scored for sid in test]
    assert sorted(held_out) == sorted(s.session_id for s in sessions)  # each scored exactly once
    assert result["client"]["n_sessions"] == 6


def test_evaluate_cross_validate_groups_sessions_that_share_an_id(make_corpus):
    scored = []

    class Spy(RuptureCoder):
        def predict_proba(self, sessions):
            scored.append([id(s) for s in sessions])
            return super().predict_proba(sessions)

    sessions = make_corpus(4, seed=3)
    twin = replace(make_corpus(1, seed=4)[0], session_id=sessions[0].session_id)
    cross_validate([*sessions, twin], lambda: Spy(embedder="hashing.v1", cv=2), folds=2)
    fold = next(ids for ids in scored if id(twin) in ids)
    assert id(sessions[0]) in fold


def test_evaluate_cross_validate_needs_two_folds(make_corpus):
    sessions = make_corpus(3)
    with pytest.raises(ConfigError, match=r"cross-validation needs at least 2 folds; found 1; fix: use --cv 2"):
        cross_validate(sessions, lambda: RuptureCoder(embedder="hashing.v1", cv=2), folds=1)
    with pytest.raises(LabelError, match=r"too few sessions to cross-validate; expected at least 2 sessions of different recordings; found 1 sessions of 1 recording"):
        cross_validate(sessions[:1], lambda: RuptureCoder(embedder="hashing.v1", cv=2), folds=5)


def test_evaluate_metrics_markdown(collected):
    text = metrics_markdown("Held out", score(collected))
    assert text.startswith("### Held out")
    assert "| rupture vs none F1 | 0.750" in text
    assert "Therapist turns: 5 in 3 sessions." in text
    assert "| `repair.link_pattern` | 0.000 |" in text
    assert metrics_markdown("Empty", {"client": None, "therapist": None}) == "### Empty\n"


def ratings(withdrawal, confrontation, resolution, n_episodes):
    return {"withdrawal": withdrawal, "confrontation": confrontation, "resolution": resolution,
            "episodes": n_episodes, "resolved_episodes": 0}


def test_evaluate_session_ratings_spearman_by_hand():
    rows = [("a", ratings(1, 1, None, 0), ratings(1, 2, 1, 1)),
            ("b", ratings(3, 1, 1, 1), ratings(2, 1, 1, 2)),
            ("c", ratings(5, 2, 3, 3), ratings(4, 1, 5, 3)),
            ("d", ratings(4, 1, 5, 2), ratings(5, 3, 3, 4))]
    sr = score({"c_gold": [], "t_gold": [], "ratings": rows})["session_ratings"]
    assert sr["sessions"] == 4
    assert sr["withdrawal"] == pytest.approx(0.8)  # ranks 1,2,4,3 against 1,2,3,4
    assert sr["episodes"] == pytest.approx(0.8)
    assert sr["resolution_sessions"] == 3 and sr["resolution"] == pytest.approx(0.5)  # a has no reference episode
    assert "| withdrawal | 0.800 | 4 |" in metrics_markdown("x", {"session_ratings": sr})
    constant = [(k, ratings(1, 1, None, 0), p) for k, _, p in rows]
    assert score({"c_gold": [], "ratings": constant})["session_ratings"]["withdrawal"] is None


def test_evaluate_collect_session_ratings_follow_the_episode_rules(fitted, test_sessions):
    c = collect(fitted, test_sessions)
    assert [sid for sid, _, _ in c["ratings"]] == [s.session_id for s in test_sessions]
    for session, (_, ref, pred) in zip(test_sessions, c["ratings"]):
        codes = {(a.layer, a.turn): a.code for a in session.annotations if a.layer in ("rupture", "repair")}
        turns = [CodedTurn(t.index, t.speaker_role, t.start_s, t.end_s, rupture=codes.get(("rupture", t.index)),
                           repair=codes.get(("repair", t.index)))
                 for t in session.turns if ("rupture", t.index) in codes or ("repair", t.index) in codes]
        assert ref == session_ratings(segments(turns), episodes(turns))
        assert set(pred) == set(ref)
    assert score(c)["session_ratings"]["sessions"] == len(test_sessions)
