"""The session-aware coder (text view, session stage, corpus thresholds), the evaluation that
predicts unseen corpora (leave-one-corpus-out, best-threshold gap, session-level Spearman), and
models pickled before these options existed."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest

from pipeline.modeling.context import exchange_text, session_stage_features, transfer_threshold
from pipeline.modeling.estimator import RuptureCoder
from pipeline.modeling.evaluate import collect, leave_one_corpus_out, metrics_markdown, score

AWARE = dict(embedder="hashing.v1", cv=3, text_view=True, session_stage=True, corpus_threshold=True)


def with_corpus(sessions, names):
    return [replace(s, meta={**s.meta, "corpus": names[i % len(names)]}) for i, s in enumerate(sessions)]


@pytest.fixture(scope="module")
def corpora(train_sessions, test_sessions):
    return with_corpus(train_sessions + test_sessions, ["alpha", "beta"])


def test_session_aware_fit_predict_and_decide(corpora, test_sessions):
    model = RuptureCoder(**AWARE).fit(corpora)
    assert {"text_model_", "stage_model_", "repair_text_model_"} <= set(vars(model))
    (scores,) = model.predict_proba(test_sessions[:1])
    client = [t.index for t in test_sessions[0].turns if t.speaker_role == "client"]
    assert np.allclose(scores.rupture[client].sum(axis=1), 1.0)
    assert 0.0 < model.rupture_threshold_ < 1.0
    decisions = model.decide(test_sessions[0], scores)
    assert {d.rupture for d in decisions if d.turn in client} <= {"none", "withdrawal", "confrontation"}
    # scoring a session alone or with others gives the same scores (the stage is per session)
    (again,) = model.predict_proba([test_sessions[1], test_sessions[0]])[1:]
    assert np.allclose(np.nan_to_num(again.rupture), np.nan_to_num(scores.rupture))


@pytest.mark.parametrize("stage", [False, True])
def test_session_aware_scores_of_many_sessions_are_the_bits_of_each_alone(corpora, test_sessions, stage):
    """predict_proba scores the text views of all its sessions in one call (sparse rows): the
    numbers must be exactly those of each session scored alone, not merely close."""
    model = RuptureCoder(**{**AWARE, "session_stage": stage}).fit(corpora)
    together = model.predict_proba(test_sessions)
    for session, scores in zip(test_sessions, together):
        (alone,) = model.predict_proba([session])
        for a, b in zip((scores.rupture, scores.markers, scores.repair, scores.strategies),
                        (alone.rupture, alone.markers, alone.repair, alone.strategies)):
            assert np.array_equal(a, b, equal_nan=True)


def test_session_aware_learns_the_synthetic_signal(corpora, test_sessions):
    model = RuptureCoder(**AWARE).fit(corpora)
    m = score(collect(model, test_sessions))
    assert m["client"]["rupture_vs_none"]["roc_auc"] > 0.8


def test_session_aware_exchange_text_only_looks_back(test_sessions):
    s = test_sessions[0]
    text = exchange_text(s, 3)
    assert text.endswith(s.turns[3].clean_text.lower()) and s.turns[4].clean_text.lower() not in text.split(" >> ")[0]
    assert exchange_text(s, 0).startswith(" >> ")


def test_session_aware_stage_features_use_the_session():
    s = type("S", (), {})()
    s.turns = [type("T", (), {"clean_text": "a b", "nonverbal": (), "text": "a b"})() for _ in range(4)]
    proba = np.array([[0.9, 0.05, 0.05], [0.2, 0.4, 0.4], [0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    f = session_stage_features(s, [0, 1, 2, 3], proba)
    assert f.shape == (4, 8)
    assert np.allclose(f[:, 3], (1 - proba[:, 0]).mean())  # session mean
    assert f[0, 4] == pytest.approx(0.8)  # the high neighbour two turns on
    assert f[1, 5] == pytest.approx(0.1)  # the highest of the turns before


def test_session_aware_transfer_threshold_is_the_median_of_corpora():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(20), np.zeros(80), np.ones(5), np.zeros(95), np.ones(10), np.zeros(90)].astype(int)
    p = np.r_[rng.uniform(0.6, 1, 20), rng.uniform(0, 0.6, 80), rng.uniform(0.2, 0.3, 5), rng.uniform(0, 0.2, 95),
              rng.uniform(0.8, 1, 10), rng.uniform(0, 0.8, 90)]
    corpus = np.array(["a"] * 100 + ["b"] * 100 + ["c"] * 100)
    t = transfer_threshold(y, p, corpus)
    assert 0.2 <= t <= 0.8
    assert transfer_threshold(y[:100], p[:100], corpus[:100]) >= 0.55  # one corpus: its own best


def test_session_aware_leave_one_corpus_out(corpora):
    result = leave_one_corpus_out(corpora, lambda: RuptureCoder(embedder="hashing.v1", cv=3),
                                  {"without alpha": (["beta"], ["alpha"]), "without beta": (["alpha"], ["beta"])})
    assert set(result) == {"without alpha", "without beta", "pooled"}
    n = result["without alpha"]["client"]["n_sessions"] + result["without beta"]["client"]["n_sessions"]
    assert result["pooled"]["client"]["n_sessions"] == n == len(corpora)
    rv = result["without alpha"]["client"]["rupture_vs_none"]  # one threshold: best_f1 bounds f1
    assert rv["best_f1"] >= rv["f1"] - 1e-9 and rv["roc_auc"] is not None
    assert result["pooled"]["client"]["session_counts"]["sessions"] == len(corpora)
    text = metrics_markdown("pooled", result["pooled"])
    assert "ROC-AUC" in text and "Spearman" in text


def test_leave_one_corpus_out_scores_each_held_out_corpus_apart(train_sessions, test_sessions):
    three = with_corpus(train_sessions + test_sessions, ["alpha", "beta", "gamma"])
    result = leave_one_corpus_out(three, lambda: RuptureCoder(embedder="hashing.v1", cv=3),
                                  {"alpha -> beta, gamma": (["alpha"], ["beta", "gamma"]),
                                   "without gamma": (["alpha", "beta"], ["gamma"])})
    split = result["alpha -> beta, gamma"]
    assert list(split["by_corpus"]) == ["beta", "gamma"]
    assert "by_corpus" not in result["without gamma"]  # one test corpus: it is the split
    for side, count in (("client", "n_turns"), ("client", "n_sessions"), ("therapist", "n_turns")):
        assert sum(m[side][count] for m in split["by_corpus"].values()) == split[side][count]
    n_beta = sum(1 for s in three if s.meta["corpus"] == "beta")
    assert split["by_corpus"]["beta"]["client"]["n_sessions"] == n_beta
    # the same model and thresholds: each corpus's confusion adds up to the split's
    total = sum(np.array(m["client"]["confusion"]["matrix"]) for m in split["by_corpus"].values())
    assert (total == np.array(split["client"]["confusion"]["matrix"])).all()
    text = metrics_markdown("split", split)
    assert "Each test corpus on its own" in text
    rows = [line for line in text.splitlines() if line.startswith(("| beta |", "| gamma |"))]
    assert len(rows) == 2 and all(line.count("|") == 12 for line in rows)


def test_session_aware_loco_split_without_sessions_is_an_error(corpora):
    from pipeline.errors import LabelError

    with pytest.raises(LabelError, match="has no sessions"):
        leave_one_corpus_out(corpora, lambda: RuptureCoder(embedder="hashing.v1"), {"x": (["gamma"], ["alpha"])})


def test_session_aware_old_pickles_load_with_the_options_off(train_sessions):
    model = RuptureCoder(embedder="hashing.v1", cv=2).fit(train_sessions)
    state = dict(vars(model))
    for key in ("text_view", "session_stage", "corpus_threshold"):
        state.pop(key)
    old = RuptureCoder.__new__(RuptureCoder)
    old.__setstate__(state)  # what unpickling a 1.0 bundle's heads does
    assert old.get_params()["text_view"] is False and old.session_stage is False
    (a,), (b,) = old.predict_proba(train_sessions[:1]), model.predict_proba(train_sessions[:1])
    assert np.allclose(np.nan_to_num(a.rupture), np.nan_to_num(b.rupture))
    assert pickle.loads(pickle.dumps(model)).get_params() == model.get_params()


def test_session_aware_examples_keep_reference_and_prediction_apart(fitted, test_sessions):
    from pipeline.modeling.evaluate import Example
    from pipeline.records import Annotation

    session = test_sessions[0]
    client = next(t.index for t in session.turns if t.speaker_role == "client")
    # the text to code carries a model's code; the reference says something else: only the reference counts
    coded = replace(session, annotations=(Annotation(session.session_id, client, "rupture", "confrontation", 0.9,
                                                     "model:x@1"),))
    reference = replace(session, annotations=(Annotation(session.session_id, client, "rupture", "withdrawal", 1.0,
                                                         "human:ref"),))
    c = collect(fitted, [Example(reference, coded)])
    assert c["c_gold"] == ["withdrawal"]
    # a labelled session is its own reference, model codes left out
    mixed = replace(reference, annotations=reference.annotations + coded.annotations)
    assert collect(fitted, [mixed])["c_gold"] == ["withdrawal"]


def test_session_aware_text_view_keeps_no_words_of_its_training_texts():
    """A bundle must not carry transcript text: the text view hashes n-grams, no vocabulary."""
    from pipeline.modeling.context import TextView

    texts = ["zyxwvut quibblesome remark about the plan", "ordinary answer about the week",
             "zyxwvut quibblesome again", "another ordinary answer"] * 5
    y = np.array([1, 0, 1, 0] * 5)
    view = TextView().fit(texts, y)
    blob = pickle.dumps(view)
    assert b"zyxwvut" not in blob and b"quibblesome" not in blob and b"ordinary" not in blob
    assert view.predict_proba(["zyxwvut quibblesome"], (0, 1))[0, 1] > 0.5
