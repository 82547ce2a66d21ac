"""The fast embedding profile ``minilm-l6-onnx-int8.v2``: exported offline from the packaged
weights into the model cache, deterministic, close to the fp32 model, and usable by bundles."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the fast profile needs `pip install -e .[fast]`")

TEXTS = ["I don't know. Whatever you think.", "You never listen to me, this is pointless.",
         "It sounds like I pushed too hard there. Can we slow down?", "Mm-hm.",
         "My week was fine, I guess, nothing special happened at work or at home really."]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    import os

    folder = tmp_path_factory.mktemp("model-cache")
    old = os.environ.get("RUPTURE_CODER_MODEL_CACHE")
    os.environ["RUPTURE_CODER_MODEL_CACHE"] = str(folder)
    from pipeline.modeling import embed_onnx

    embed_onnx.quantised_model_path.cache_clear()
    yield folder
    embed_onnx.quantised_model_path.cache_clear()
    if old is None:
        os.environ.pop("RUPTURE_CODER_MODEL_CACHE")
    else:
        os.environ["RUPTURE_CODER_MODEL_CACHE"] = old


@pytest.mark.slow
def test_onnx_embedder_exports_once_into_the_cache_and_matches_fp32(onnx_cache):
    from pipeline.modeling.embed import SentenceTransformerEmbedder
    from pipeline.modeling.embed_onnx import OnnxInt8Embedder

    fast = OnnxInt8Embedder()
    vectors = fast.encode(TEXTS)
    [exported] = list(onnx_cache.rglob("model.int8.onnx"))
    assert fast.weights_hash.startswith("sha256:") and len(fast.weights_hash) == 71
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = OnnxInt8Embedder().encode(TEXTS[::-1])[::-1]  # what is encoded beside a text changes nothing
    assert np.allclose(vectors, again, atol=1e-6)
    assert np.allclose(vectors[1:2], OnnxInt8Embedder().encode(TEXTS[1:2]), atol=1e-6)
    assert fast.encode([]).shape == (0, 384)
    reference = SentenceTransformerEmbedder().encode(TEXTS)
    cosine = (vectors * reference).sum(axis=1)
    assert cosine.min() > 0.8 and cosine.mean() > 0.9, cosine
    # the nearest fp32 vector of each int8 vector is its own text's
    assert list((vectors @ reference.T).argmax(axis=1)) == list(range(len(TEXTS)))
    mtime = exported.stat().st_mtime_ns
    OnnxInt8Embedder().encode(TEXTS[:1])
    assert exported.stat().st_mtime_ns == mtime  # not exported twice


@pytest.mark.slow
def test_onnx_fast_bundle_loads_and_codes(onnx_cache, make_session):
    from pipeline.modeling.bundle import load_bundle, resolve_model_path
    from pipeline.coding.apply import code_sessions

    try:
        path = resolve_model_path("rupture-fast/2.0.0")
    except Exception:  # noqa: BLE001
        pytest.fail("the shipped fast bundle models/rupture-fast/2.0.0 is missing")
    bundle = load_bundle(path)  # checks the embedder's weights hash against the bundle's
    assert bundle.model.embedder == "minilm-l6-onnx-int8.v2"
    session = make_session([("T", "What would you like to work on?"), ("C", "I don't know. Whatever you think."),
                            ("T", "It sounds hard to choose."), ("C", "This is pointless, you never listen.")])
    [coded] = code_sessions([session], bundle)
    assert len(coded.session.turns) == 4
