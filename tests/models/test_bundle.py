"""pipeline.modeling.bundle: write-once model bundles, loading, checks and resolution."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

from pipeline.codebook import load_codebook
from pipeline.modeling.bundle import REQUIRED, load_bundle, resolve_model_path, save_bundle
from pipeline.errors import ModelError

MANIFEST = {"scheme": "rupture_v1@1.0.0", "recipe": "test", "counts": {"sessions": 10, "turns": 240},
            "files": [], "warnings": 0}


@pytest.fixture
def bundle_dir(fitted, tmp_path):
    return save_bundle(fitted, tmp_path / "models" / "tiny" / "0.1.0", "tiny", "0.1.0", MANIFEST,
                       metrics={"cv": {"folds": 2}}, card="# tiny card\n")


def test_bundle_save_writes_every_file(bundle_dir, fitted):
    assert {p.name for p in bundle_dir.iterdir()} == {*REQUIRED, "metrics.json", "heads.json", "heads.safetensors"}
    config = json.loads((bundle_dir / "config.json").read_text())
    assert config["name"] == "tiny" and config["version"] == "0.1.0"
    assert config["embedder"] == {"name": "hashing.v1", "model_id": "hashing word n-grams (test only)",
                                  "weights_hash": "hashing-64", "dim": 64}
    assert config["scheme"] == fitted.scheme_ == f"rupture_v1@{load_codebook().version}"
    assert config["thresholds"]["rupture"] == pytest.approx(fitted.rupture_threshold_)
    assert set(config["thresholds"]["markers"]) == set(fitted.markers_)
    assert json.loads((bundle_dir / "data_manifest.json").read_text()) == MANIFEST
    assert (bundle_dir / "MODEL_CARD.md").read_text() == "# tiny card\n"
    assert not [p for p in bundle_dir.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_bundle_round_trip_gives_identical_predictions(bundle_dir, fitted, test_sessions):
    bundle = load_bundle(bundle_dir)
    assert bundle.path == bundle_dir
    for a, b in zip(fitted.predict_proba(test_sessions), bundle.model.predict_proba(test_sessions)):
        for field in ("rupture", "markers", "repair", "strategies"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    session = test_sessions[0]
    (scores,) = bundle.model.predict_proba([session])
    assert bundle.model.decide(session, scores) == fitted.decide(session, scores)


def test_bundle_save_does_not_touch_the_model(fitted, tmp_path):
    model = copy.copy(fitted).set_params(cache_dir=str(tmp_path / "cache"))
    save_bundle(model, tmp_path / "m" / "1", "m", "1", MANIFEST)
    assert model.cache_dir == str(tmp_path / "cache")
    assert load_bundle(tmp_path / "m" / "1").model.cache_dir is None  # a run's cache is not the model's
    assert load_bundle(tmp_path / "m" / "1", cache_dir="c").model.cache_dir == "c"


def test_bundle_is_write_once(bundle_dir, fitted):
    before = (bundle_dir / "heads.safetensors").read_bytes()
    with pytest.raises(ModelError, match=r"0\.1\.0: bundle already exists \(bundles are write-once\); "
                                         r"fix: choose a new version"):
        save_bundle(fitted, bundle_dir, "tiny", "0.1.0", MANIFEST)
    assert (bundle_dir / "heads.safetensors").read_bytes() == before


@pytest.mark.parametrize("missing", [("heads.safetensors",), ("MODEL_CARD.md", "data_manifest.json")])
def test_bundle_incomplete_names_the_missing_files(bundle_dir, tmp_path, missing):
    copy = shutil.copytree(bundle_dir, tmp_path / "copy")
    for name in missing:
        (copy / name).unlink()
    expected = ", ".join(n for n in (*REQUIRED, "heads.json", "heads.safetensors") if n in missing)
    with pytest.raises(ModelError, match=rf"copy: incomplete model bundle; found missing {expected}; fix: re-train"):
        load_bundle(copy)


def test_bundle_weights_hash_mismatch(bundle_dir, tmp_path):
    copy = shutil.copytree(bundle_dir, tmp_path / "copy")
    config = json.loads((copy / "config.json").read_text())
    config["embedder"]["weights_hash"] = "hashing-32"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"embedding model differs from the one the bundle was trained with; "
                                         r"expected hashing-32; found hashing-64"):
        load_bundle(copy)


def test_bundle_resolve_by_name_and_version(bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.modeling.bundle.project_home", lambda: tmp_path)
    monkeypatch.chdir(tmp_path / "models")  # "tiny/0.1.0" is also a relative path from here ...
    assert resolve_model_path("tiny/0.1.0") == bundle_dir.relative_to(tmp_path / "models")
    monkeypatch.chdir(bundle_dir)  # ... but not from here: found under models/
    assert resolve_model_path("tiny/0.1.0") == bundle_dir
    assert load_bundle("tiny/0.1.0").config["name"] == "tiny"


def test_bundle_resolve_by_path(bundle_dir):
    assert resolve_model_path(bundle_dir) == bundle_dir
    assert resolve_model_path(str(bundle_dir)) == bundle_dir


def test_bundle_resolve_default_and_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.modeling.bundle.project_home", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=r"model 'rupture-default/2\.1\.0' not found; expected a bundle "
                                         r"directory or NAME/VERSION under models/"):
        resolve_model_path(None)
    with pytest.raises(ModelError, match=r"model 'nope/9' not found.*fix: check --model"):
        load_bundle("nope/9")


def test_bundle_source(bundle_dir):
    assert load_bundle(bundle_dir).source == "model:tiny@0.1.0"


def test_bundle_shipped_default_holds_no_transcript_words():
    """The shipped bundles are trained on transcripts whose licences forbid redistribution: no
    word of them may travel inside a bundle (the text view hashes its n-grams)."""
    import pickle

    from pipeline.modeling.bundle import _load_heads
    from pipeline.resources import project_home

    for version in ("2.0.0",):
        model = _load_heads(project_home() / "models" / "rupture-default" / version / "heads.joblib")
        blob = pickle.dumps(model)
        for word in (b"smoking", b"drinking", b"because", b"counsellor", b"alcohol"):
            assert word not in blob, (version, word)
    for version in ("2.0.1", "2.1.0"):
        folder = project_home() / "models" / "rupture-default" / version
        blob = (folder / "heads.json").read_bytes() + (folder / "heads.safetensors").read_bytes()
        for word in (b"smoking", b"drinking", b"because", b"counsellor", b"alcohol"):
            assert word not in blob, (version, word)


@pytest.mark.parametrize("kind", ["estimator", "prototypes"])
def test_coding_with_a_run_cache_closes_it_before_returning(tiny_bundle, tmp_path, kind):
    """A long-lived process (the worker) codes with the run's cache folder; the cache's SQLite
    connection sits in a reference cycle, so a cache left to the garbage collector keeps its
    -wal/-shm files beside the database until a collection runs (the worker's output folder then
    differed from an inline run's, now and then: a CI failure)."""
    import gc

    from pipeline.modeling.prototypes import PrototypeCoder
    from pipeline.modeling.training import load_constructed

    session = load_constructed().sessions[0]
    cache = tmp_path / "cache"
    bundle = load_bundle(tiny_bundle, cache_dir=str(cache))
    model = bundle.model
    if kind == "prototypes":
        model = PrototypeCoder(embedder="hashing.v1").fit([session])
        model.cache_dir = str(cache)
    gc.disable()
    try:
        model.predict_proba([session])
        assert sorted(p.name for p in cache.iterdir()) == ["embeddings.sqlite"]
    finally:
        gc.enable()
