"""What the text view's tokenizer keeps of an exchange text, and the context-marking candidates
of ``models/recipes/context_marks.py`` (issue 12)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.metrics import roc_auc_score

from pipeline.modeling.bundle import load_bundle, save_bundle
from pipeline.modeling.card import model_card
from pipeline.modeling.context import TextView, exchange_text
from pipeline.modeling.estimator import RuptureCoder

AWARE = dict(embedder="hashing.v1", cv=3, text_view=True, corpus_threshold=True)
FILLER = ("work", "week", "sister", "dinner", "sleep", "plan", "weekend", "walk", "tired", "office",
          "train", "garden", "money", "phone", "friend", "mother", "school", "morning", "rain")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models" / "recipes"))


@pytest.fixture
def exchange(build):
    return build("x", [("T1", "You should stop, really."), ("C1", "I don't know."), ("T1", "OK?"),
                       ("C1", "Fine, whatever you say.")])


def tokens(text: str) -> list[str]:
    return HashingVectorizer(ngram_range=(1, 1)).build_analyzer()(text)


def test_the_default_view_reads_context_and_turn_as_one_bag(exchange):
    # the role letters and separators of exchange_text never reach the view (documented in its
    # docstring); the shipped bundles were trained this way, so the text itself stays as it is
    assert exchange_text(exchange, 3) == "C i don't know. || T ok? >> fine, whatever you say."
    assert tokens(exchange_text(exchange, 3)) == ["don", "know", "ok", "fine", "whatever", "you", "say"]


def test_the_marked_context_keeps_each_context_words_speaker(exchange):
    from context_marks import marked_exchange

    marked = tokens(marked_exchange(exchange, 3, pooled=False))
    assert marked == ["c_don", "c_know", "t_ok", "fine", "whatever", "you", "say"]
    both = tokens(marked_exchange(exchange, 3, pooled=True))
    assert both == ["c_don", "c_know", "don", "know", "t_ok", "ok", "fine", "whatever", "you", "say"]
    assert tokens(marked_exchange(exchange, 0, pooled=True)) == ["you", "should", "stop", "really"]


def test_the_recipes_verdicts_keep_the_rule_and_the_confirmation_apart():
    from context_marks import BOTH, DEFAULT, MARKED, verdicts

    def order(d, m, b=None):
        return {DEFAULT: {"selection": d}, MARKED: {"selection": m}, **({BOTH: {"selection": b}} if b else {})}

    orders = {o: order(0.25, 0.26, 0.251) for o in ("pool", "seed 0", "seed 1", "seed 2", "seed 3")}
    orders.update({"seed 7": order(0.25, 0.252), "seed 8": order(0.25, 0.26)})
    out = verdicts({"orders": orders})
    assert out[MARKED]["rule"]["replaces_default"] is True and out[MARKED]["rule"]["complete"] is True
    assert out[MARKED]["confirmation"]["complete"] is False and out[MARKED]["confirmation"]["gains"] == [0.002, 0.01]
    assert out[BOTH]["rule"]["replaces_default"] is False and "confirmation" not in out[BOTH]


def test_the_library_marks_what_the_recipe_measured(build, exchange):
    from context_marks import marked_exchange

    assert exchange_text(exchange, 3, marks=True) == "c_don c_know || t_ok >> fine, whatever you say."
    other = build("y", [("T1", "Why now?"), ("I1", "Interpreting: why now"), ("C1", "Because it's late")])
    assert exchange_text(other, 2, marks=True) == "t_why t_now || o_interpreting o_why o_now >> because it's late"
    for session in (exchange, other):
        for i in range(len(session.turns)):
            assert exchange_text(session, i, marks=True) == marked_exchange(session, i, False)
            assert exchange_text(session, i) == exchange_text(session, i, marks=False)


def whose_word_corpus(build, n: int, seed: int):
    """Sessions in which a therapist turn is a repair exactly when the client turn before it says
    "stupid"; therapist turns say it as often, without consequence. Only a view that knows whose
    word it was can tell the two apart."""
    rng = random.Random(seed)
    sessions = []
    for k in range(n):
        specs, notes, repair_next = [], [], False
        for _ in range(12):
            t = len(specs)
            words = (["stupid"] if rng.random() < 0.4 else []) + [rng.choice(FILLER) for _ in range(5)]
            specs.append(("T", " ".join(rng.sample(words, len(words)))))
            notes.append((t, "repair", "repair" if repair_next else "none"))
            said = rng.random() < 0.4
            words = (["stupid"] if said else []) + [rng.choice(FILLER) for _ in range(5)]
            specs.append(("C", " ".join(rng.sample(words, len(words)))))
            notes.append((t + 1, "rupture", "withdrawal" if rng.random() < 0.3 else "none"))
            repair_next = said
        sessions.append(build(f"w{k:02d}", specs, notes))
    return sessions


def repair_view_auc(train, test, marks: bool) -> float:
    def rows(sessions):
        where = [(si, t.index) for si, s in enumerate(sessions) for t in s.turns if t.speaker_role == "therapist" and t.index]
        y = np.array([next(a.code for a in sessions[si].annotations if a.turn == ti and a.layer == "repair") == "repair"
                      for si, ti in where], dtype=int)
        return RuptureCoder()._row_texts(sessions, where, False, marks), y

    (x, y), (xt, yt) = rows(train), rows(test)
    return roc_auc_score(yt, TextView().fit(x, y).predict_proba(xt, (0, 1))[:, 1])


def test_the_marked_repair_view_learns_whose_word_it_was(build):
    train, test = whose_word_corpus(build, 30, 1), whose_word_corpus(build, 10, 2)
    plain, marked = repair_view_auc(train, test, marks=False), repair_view_auc(train, test, marks=True)
    assert plain < 0.85 and marked > 0.95 and marked > plain + 0.1  # measured: 0.70-0.82 against 0.98-1.00


def test_repair_marks_changes_the_repair_view_only(build):
    sessions = whose_word_corpus(build, 16, 3)
    plain = RuptureCoder(**AWARE).fit(sessions[:12])
    marked = RuptureCoder(**AWARE, repair_marks=True).fit(sessions[:12])
    for a, b in zip(plain.predict_proba(sessions[12:]), marked.predict_proba(sessions[12:])):
        assert np.array_equal(a.rupture, b.rupture, equal_nan=True)
        assert not np.allclose(a.repair, b.repair, equal_nan=True)
    together = marked.predict_proba(sessions[12:])
    for session, scores in zip(sessions[12:], together):  # batch scoring reads what one session's does
        assert np.array_equal(scores.repair, marked.predict_proba([session])[0].repair, equal_nan=True)


@pytest.mark.parametrize("bundle_format", [1, 2])
def test_repair_marks_is_kept_in_a_bundle(build, tmp_path, bundle_format):
    sessions = whose_word_corpus(build, 13, 4)
    model = RuptureCoder(**AWARE, repair_marks=True).fit(sessions[:12])
    path = save_bundle(model, tmp_path / "m" / "1.0.0", "m", "1.0.0", {"files": []}, bundle_format=bundle_format)
    assert json.loads((path / "config.json").read_text())["features"]["repair_marks"] is True
    loaded = load_bundle(path).model
    assert loaded.repair_marks is True
    assert np.allclose(model.predict_proba(sessions[12:])[0].repair, loaded.predict_proba(sessions[12:])[0].repair, equal_nan=True)
    assert "repair_marks" in model_card("m", "1.0.0", model, {"files": [], "counts": {"sessions": 12, "turns": 1},
                                                               "recipe": "-"}, {}).replace("marked by speaker", "repair_marks")


def test_bundles_without_repair_marks_load_with_it_off(build, tmp_path):
    from pipeline.modeling.weights import load_weights

    shipped = Path(__file__).resolve().parents[2] / "models" / "rupture-default" / "2.0.1"
    assert load_weights(shipped).repair_marks is False
    model = RuptureCoder(**AWARE).fit(whose_word_corpus(build, 12, 5))
    path = save_bundle(model, tmp_path / "m" / "1.0.0", "m", "1.0.0", {"files": []}, bundle_format=2)
    assert "repair_marks" not in json.loads((path / "config.json").read_text())["features"]
    old = RuptureCoder.__new__(RuptureCoder)
    old.__setstate__({k: v for k, v in vars(model).items() if k != "repair_marks"})  # pickled before it
    assert old.repair_marks is False


def test_the_default_recipe_offers_the_repair_candidate_under_a_name_its_command_line_can_take():
    from train_default import CANDIDATES

    assert all("," not in name for name in CANDIDATES)  # --candidates is comma-separated
    assert CANDIDATES["embedding+text+repair-marks"] == dict(CANDIDATES["embedding+text"], repair_marks=True)
    assert list(CANDIDATES)[-1] == "session-aware"  # what --small trains (tests/models/test_recipe.py)
