"""Text views that also read the other party's reply (``RuptureCoder(text_reply=True)`` for the
rupture view, ``repair_reply=True`` for the repair view): which turn is the reply, what the views
read, that they learn from the reply, that it is kept in a bundle, and that without it nothing
changes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from pipeline.modeling.bundle import load_bundle, save_bundle
from pipeline.modeling.context import exchange_text, reply_indices
from pipeline.modeling.estimator import RuptureCoder
from pipeline.modeling.evaluate import collect, score


AWARE = dict(embedder="hashing.v1", cv=3, text_view=True, corpus_threshold=True)
FILLER = ("work", "week", "sister", "dinner", "sleep", "plan", "weekend", "walk", "tired", "office",
          "train", "garden", "money", "phone", "friend", "mother", "school", "morning", "rain")


def reply_only_session(build, session_id: str, rng: random.Random, shown_by: str, pairs: int = 14):
    """Sessions whose codes only a reply shows. ``shown_by="therapist"``: client ruptures in
    words any turn may hold, and the therapist's reply to each says "sorry"; ``"client"``: the
    therapist turn after each rupture is a repair in words any turn may hold, and the client's
    answer to it says "thanks"."""
    specs, notes, after = [], [], False
    for _ in range(pairs):
        t = len(specs)
        sorry = after and shown_by == "therapist"
        specs.append(("T", " ".join((["sorry"] if sorry else []) + [rng.choice(FILLER) for _ in range(5)])))
        notes.append((t, "repair", "repair" if after else "none"))
        thanks = after and shown_by == "client"
        kind = "withdrawal" if rng.random() < 0.35 else "none"
        specs.append(("C", " ".join((["thanks"] if thanks else []) + [rng.choice(FILLER) for _ in range(6)])))
        notes.append((t + 1, "rupture", kind))
        if kind != "none":
            notes.append((t + 1, "markers", "withdrawal.minimal_response"))
        after = kind != "none"
    return build(session_id, specs, notes)


@pytest.fixture
def reply_corpus(build):
    rng = random.Random(7)
    return [reply_only_session(build, f"r{i:02d}", rng, "therapist") for i in range(24)]


@pytest.fixture
def answer_corpus(build):
    rng = random.Random(8)
    return [reply_only_session(build, f"a{i:02d}", rng, "client") for i in range(24)]


def test_reply_of_a_client_turn_is_the_therapists_next_turn(build):
    s = build("x", [("C1", "a"), ("I1", "c"), ("C1", "b"), ("T1", "d"), ("C1", "e"), ("T1", "f")])
    assert [t.speaker_role for t in s.turns] == ["client", "other", "client", "therapist", "client", "therapist"]
    # the interpreter and the client's second turn are passed over; the last turn has no reply
    assert reply_indices(s) == [3, 2, 3, 4, 5, None]
    assert exchange_text(s, 4, reply=5) == "C b || T d >> e << r_T r_f"
    assert exchange_text(s, 4) == "C b || T d >> e"  # without a reply: as before


def rupture_and_repair_auc(corpus, **params) -> tuple[float, float]:
    m = score(collect(RuptureCoder(**AWARE, **params).fit(corpus[:16]), corpus[16:]), intervals=0)
    return m["client"]["rupture_vs_none"]["roc_auc"], m["therapist"]["repair"]["roc_auc"]


def test_the_rupture_view_learns_a_rupture_only_the_therapists_reply_shows(reply_corpus):
    assert rupture_and_repair_auc(reply_corpus)[0] < 0.7
    assert rupture_and_repair_auc(reply_corpus, text_reply=True)[0] > 0.9
    assert rupture_and_repair_auc(reply_corpus, repair_reply=True)[0] < 0.7  # the repair view's reply: no help


def test_the_repair_view_learns_a_repair_only_the_clients_answer_shows(answer_corpus):
    plain = rupture_and_repair_auc(answer_corpus)[1]
    assert plain < 0.8
    assert rupture_and_repair_auc(answer_corpus, repair_reply=True)[1] > plain + 0.15


def test_views_without_the_reply_read_what_they_read_before(reply_corpus):
    s = reply_corpus[9]
    turns = [t.index for t in s.turns]
    assert RuptureCoder._view_texts(s, turns, False) == [exchange_text(s, i) for i in turns]
    replies = reply_indices(s)
    assert RuptureCoder._view_texts(s, turns, True) == [exchange_text(s, i, reply=replies[i]) for i in turns]


def test_reply_views_score_many_sessions_as_each_alone(reply_corpus):
    model = RuptureCoder(**AWARE, text_reply=True, repair_reply=True).fit(reply_corpus[:12])
    together = model.predict_proba(reply_corpus[12:16])
    for session, scores in zip(reply_corpus[12:16], together):
        (alone,) = model.predict_proba([session])
        assert np.array_equal(scores.rupture, alone.rupture, equal_nan=True)
        assert np.array_equal(scores.repair, alone.repair, equal_nan=True)


@pytest.mark.parametrize("bundle_format", [1, 2])
def test_reply_views_are_kept_in_a_bundle(reply_corpus, tmp_path, bundle_format):
    model = RuptureCoder(**AWARE, text_reply=True, repair_reply=True).fit(reply_corpus[:12])
    path = save_bundle(model, tmp_path / "m" / "1.0.0", "m", "1.0.0", {"files": []}, bundle_format=bundle_format)
    config = json.loads((path / "config.json").read_text())
    assert config["features"]["text_reply"] is True and config["features"]["repair_reply"] is True
    loaded = load_bundle(path).model
    assert loaded.text_reply is True and loaded.repair_reply is True
    a, b = model.predict_proba(reply_corpus[12:13]), loaded.predict_proba(reply_corpus[12:13])
    assert np.allclose(a[0].rupture, b[0].rupture, equal_nan=True)
    assert np.allclose(a[0].repair, b[0].repair, equal_nan=True)


def test_bundles_without_reply_views_load_with_them_off(reply_corpus, tmp_path):
    from pipeline.modeling.weights import load_weights

    shipped = Path(__file__).resolve().parents[2] / "models" / "rupture-default" / "2.0.1"
    assert "_reply" not in (shipped / "heads.json").read_text()
    assert load_weights(shipped).text_reply is False and load_weights(shipped).repair_reply is False
    model = RuptureCoder(**AWARE).fit(reply_corpus[:12])
    path = save_bundle(model, tmp_path / "m" / "1.0.0", "m", "1.0.0", {"files": []}, bundle_format=2)
    assert not {"text_reply", "repair_reply"} & set(json.loads((path / "config.json").read_text())["features"])
    state = {k: v for k, v in vars(model).items() if not k.endswith("_reply")}  # a model pickled before them
    old = RuptureCoder.__new__(RuptureCoder)
    old.__setstate__(state)
    assert old.text_reply is False and old.repair_reply is False


def test_the_recipes_rule_needs_a_gain_in_every_order_and_above_the_noise_at_the_median():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
    from text_reply import verdict

    assert verdict([0.25, 0.25, 0.25], [0.26, 0.259, 0.27])["replaces_default"] is True
    assert verdict([0.25, 0.25, 0.25], [0.26, 0.249, 0.27])["replaces_default"] is False  # one order lost
    out = verdict([0.25, 0.25, 0.25], [0.256, 0.255, 0.26])  # always ahead, but within the noise
    assert out["replaces_default"] is False and out["median_gain"] == 0.006
    assert out["gains"] == [0.006, 0.005, 0.01]


def test_fitting_and_scoring_make_every_view_text_through_view_texts(reply_corpus):
    """Experiments (the recipes' subclasses) override ``_view_texts`` only; the labelled rows'
    texts in fitting must come from it too, or a subclass trains on one text and scores another."""
    calls = []

    class Spy(RuptureCoder):
        @staticmethod
        def _view_texts(session, turns, reply, marks=False):
            calls.append((session.session_id, tuple(turns), reply, marks))
            return RuptureCoder._view_texts(session, turns, reply, marks)

    model = Spy(**AWARE, text_reply=True, repair_marks=True).fit(reply_corpus[:6])
    fitted = set(calls)
    for s in reply_corpus[:6]:
        client = tuple(t.index for t in s.turns if t.speaker_role == "client")
        therapist = tuple(t.index for t in s.turns if t.speaker_role == "therapist")
        assert (s.session_id, client, True, False) in fitted  # all labelled client turns, one call a session
        assert (s.session_id, therapist, False, True) in fitted
    plain = RuptureCoder(**AWARE, text_reply=True, repair_marks=True).fit(reply_corpus[:6])
    calls.clear()
    a, b = model.predict_proba(reply_corpus[6:8]), plain.predict_proba(reply_corpus[6:8])
    assert {c[0] for c in calls} == {s.session_id for s in reply_corpus[6:8]}
    assert all(np.array_equal(x.repair, y.repair, equal_nan=True) for x, y in zip(a, b))


def test_the_recipes_view_subclasses_fit_and_score(reply_corpus):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))
    from context_marks import MarkedContext
    from text_reply import UnmarkedReply

    for cls, params in ((UnmarkedReply, dict(text_reply=True, repair_reply=True)), (MarkedContext, {})):
        model = cls(**AWARE, **params).fit(reply_corpus[:6])
        (scores,) = model.predict_proba(reply_corpus[6:7])
        assert np.isfinite(scores.rupture[~np.isnan(scores.rupture[:, 0])]).all()
