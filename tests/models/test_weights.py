"""Bundle format 2 (issue #12, item 7): heads as JSON + safetensors, loaded without unpickling,
the same codes as the pickled bundle; format-1 bundles still load, with a warning."""

from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pytest

from pipeline.errors import ModelError
from pipeline.modeling import weights
from pipeline.modeling.bundle import load_bundle, save_bundle, upgrade_bundle
from pipeline.modeling.estimator import RuptureCoder
from pipeline.resources import project_home

MANIFEST = {"scheme": "rupture_v1", "counts": {}}


def _scores(model, sessions):
    return [np.concatenate([s.rupture.ravel(), s.markers.ravel(), s.repair.ravel(), s.strategies.ravel()])
            for s in model.predict_proba(sessions)]


@pytest.mark.parametrize("params", [dict(), dict(text_view=True, corpus_threshold=True),
                                    dict(text_view=True, session_stage=True), dict(head="svm")])
def test_weights_round_trip_gives_identical_scores(train_sessions, test_sessions, tmp_path, params):
    model = RuptureCoder(embedder="hashing.v1", cv=3, **params).fit(train_sessions)
    weights.save_weights(model, tmp_path)
    again = weights.load_weights(tmp_path)
    for a, b in zip(_scores(model, test_sessions), _scores(again, test_sessions)):
        np.testing.assert_array_equal(a, b)
    assert [model.decide(s, sc) for s, sc in zip(test_sessions, model.predict_proba(test_sessions))] == \
        [again.decide(s, sc) for s, sc in zip(test_sessions, again.predict_proba(test_sessions))]
    assert weights.tree_of(again) == weights.tree_of(model)


def test_weights_never_unpickle(train_sessions, tmp_path, monkeypatch):
    import joblib

    weights.save_weights(RuptureCoder(embedder="hashing.v1", cv=2).fit(train_sessions), tmp_path)
    for module, name in ((pickle, "loads"), (pickle, "load"), (joblib, "load")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("unpickled"))
    assert weights.load_weights(tmp_path).n_train_sessions_ == len(train_sessions)


def test_weights_refuse_a_class_outside_the_allowed_list(train_sessions, tmp_path):
    weights.save_weights(RuptureCoder(embedder="hashing.v1", cv=2).fit(train_sessions), tmp_path)
    doc = json.loads((tmp_path / "heads.json").read_text())
    doc["model"]["state"]["rupture_model_"]["object"] = "os.system"
    (tmp_path / "heads.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="outside the allowed list"):
        weights.load_weights(tmp_path)
    (tmp_path / "heads.safetensors").write_bytes(b"not tensors")
    with pytest.raises(ModelError, match="unreadable bundle weights"):
        weights.load_weights(tmp_path)


def test_bundle_with_a_head_format_2_cannot_hold_is_written_as_format_1(train_sessions, tmp_path, caplog):
    model = RuptureCoder(embedder="hashing.v1", cv=2, head="hgb").fit(train_sessions)
    with pytest.raises(weights.Unsupported, match="HistGradientBoostingClassifier"):
        save_bundle(model, tmp_path / "m" / "2", "m", "2", MANIFEST, bundle_format=2)
    with caplog.at_level(logging.WARNING):
        path = save_bundle(model, tmp_path / "m" / "1", "m", "1", MANIFEST)
    assert json.loads((path / "config.json").read_text())["format"] == 1 and (path / "heads.joblib").exists()
    assert not (path / "heads.safetensors").exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_bundle(path)
    assert "format 1" in caplog.text and "pickle" in caplog.text


def test_upgrade_bundle_keeps_the_codes(train_sessions, test_sessions, tmp_path, caplog):
    model = RuptureCoder(embedder="hashing.v1", cv=2).fit(train_sessions)
    old = save_bundle(model, tmp_path / "m" / "1.0.0", "m", "1.0.0", MANIFEST, card="# m 1.0.0\n", bundle_format=1)
    new = upgrade_bundle(old, tmp_path / "m" / "1.0.1")
    config = json.loads((new / "config.json").read_text())
    assert (config["format"], config["version"], config["converted_from"]) == (2, "1.0.1", "m@1.0.0")
    assert not (new / "heads.joblib").exists() and "m@1.0.0" in (new / "MODEL_CARD.md").read_text()
    with caplog.at_level(logging.WARNING):
        loaded = load_bundle(new).model
    assert "format 1" not in caplog.text
    for a, b in zip(_scores(model, test_sessions), _scores(loaded, test_sessions)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match="already format 2"):
        upgrade_bundle(new, tmp_path / "m" / "1.0.2")
    with pytest.raises(ModelError, match="write-once"):
        upgrade_bundle(old, new)


def test_shipped_format_2_bundles_hold_the_same_heads_as_their_pickles():
    from pipeline.modeling.bundle import _load_heads

    for name, old, new in (("rupture-default", "2.0.0", "2.0.1"), ("rupture-fast", "1.0.0", "1.0.1")):
        folder = project_home() / "models" / name
        config = json.loads((folder / new / "config.json").read_text())
        assert (config["format"], config["converted_from"]) == (2, f"{name}@{old}")
        assert weights.tree_of(weights.load_weights(folder / new)) == \
            weights.tree_of(_load_heads(folder / old / "heads.joblib"))
        assert (folder / new / "heads.safetensors").stat().st_size < 2_000_000


def test_weights_file_permissions_follow_the_umask(train_sessions, tmp_path):
    path = save_bundle(RuptureCoder(embedder="hashing.v1", cv=2).fit(train_sessions), tmp_path / "m" / "1", "m", "1",
                       MANIFEST)
    assert (path / "heads.safetensors").stat().st_mode & 0o044 and path.stat().st_mode & 0o055
