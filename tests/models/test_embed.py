"""pipeline.modeling.embed: the embedder registry, the hashing embedder, de-duplication and the cache."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from pipeline.modeling.embed import (EMBEDDERS, EmbeddingCache, HashingEmbedder, embed_texts, get_embedder,
                                     length_batches, register_embedder)
from pipeline.errors import ConfigError


@pytest.fixture
def registered(monkeypatch, counting):
    """Register a fresh counting embedder under a unique name; returns (name, instance)."""
    monkeypatch.setattr("pipeline.modeling.embed.EMBEDDERS", dict(EMBEDDERS))
    name = f"counting-{uuid.uuid4().hex[:8]}.v1"
    register_embedder(name, lambda: counting(name))
    return name, get_embedder(name)


def test_embed_registry_unknown_name_is_config_error():
    with pytest.raises(ConfigError, match=r"unknown embedder 'nope\.v9'; expected one of .*hashing\.v1"):
        get_embedder("nope.v9")


def test_embed_registry_returns_one_instance_per_name(registered, counting):
    name, embedder = registered
    assert isinstance(embedder, counting)
    assert get_embedder(name) is embedder


def test_embed_register_replaces_an_already_used_name(registered, counting):
    name, first = registered
    register_embedder(name, lambda: counting(name, weights="w2"))
    second = get_embedder(name)
    assert second is not first
    assert second.weights_hash == "counting-w2"


def test_embed_hashing_is_deterministic_and_normalised():
    texts = ["I don't know, whatever", "you never listen", "ok", "I don't know, whatever"]
    a = HashingEmbedder().encode(texts)
    b = HashingEmbedder().encode(texts)
    assert a.shape == (4, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(a[0], a[3])
    assert not np.allclose(a[0], a[1])


def test_embed_hashing_empty_text_is_a_zero_vector():
    assert not HashingEmbedder(dim=8).encode([""]).any()


def test_embed_texts_encodes_each_unique_text_once(counting):
    embedder = counting()
    stats: dict = {}
    texts = ["mm", "no", "mm", "why?", "no", "mm"]
    out = embed_texts(texts, embedder, stats=stats)
    assert len(embedder.calls) == 1
    assert sorted(embedder.encoded) == ["mm", "no", "why?"]
    assert stats == {"texts": 6, "unique": 3, "encoded": 3}
    np.testing.assert_array_equal(out, HashingEmbedder(16).encode(texts))


def test_embed_texts_keeps_input_order_with_partial_cache_hits(tmp_path, counting):
    embedder = counting()
    cache = EmbeddingCache(tmp_path / "e.sqlite")
    embed_texts(["b", "d"], embedder, cache)
    texts = ["a", "b", "c", "d", "a"]
    out = embed_texts(texts, embedder, cache)
    assert embedder.calls[-1] == ["a", "c"]
    np.testing.assert_array_equal(out, HashingEmbedder(16).encode(texts))


def test_embed_texts_second_call_hits_the_cache(tmp_path, counting):
    embedder = counting()
    texts = ["first turn", "second turn", "first turn"]
    first_stats, second_stats = {}, {}
    first = embed_texts(texts, embedder, EmbeddingCache(tmp_path / "e.sqlite"), first_stats)
    second = embed_texts(texts, embedder, EmbeddingCache(tmp_path / "e.sqlite"), second_stats)
    assert first_stats["encoded"] == 2
    assert second_stats == {"texts": 3, "unique": 2, "encoded": 0}
    assert len(embedder.calls) == 1
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("other", [{"name": "other.v1"}, {"weights": "w2"}], ids=["other-name", "other-weights"])
def test_embed_cache_is_keyed_by_embedder_name_and_weights(tmp_path, counting, other):
    cache = EmbeddingCache(tmp_path / "e.sqlite")
    embed_texts(["shared text"], counting(), cache)
    other = counting(**other)
    stats: dict = {}
    embed_texts(["shared text"], other, cache, stats)
    assert stats["encoded"] == 1
    assert other.encoded == ["shared text"]


def test_embed_cache_holds_no_text(tmp_path, counting):
    canary = "CANARY-7f3a the client said something private"
    cache = EmbeddingCache(tmp_path / "cache" / "e.sqlite")
    embed_texts([canary, "other"], counting(), cache)
    files = list((tmp_path / "cache").iterdir())
    assert files
    for path in files:
        data = path.read_bytes()
        assert b"CANARY" not in data and canary.encode() not in data, path.name


def test_embed_texts_empty_input(counting):
    out = embed_texts([], counting(dim=16))
    assert out.shape == (0, 16)


def test_embed_model_loads_once_when_a_warm_up_thread_and_the_run_ask_together(monkeypatch):
    """The warm-up thread and the first encode may ask for the model at the same time: one load."""
    import sys
    import threading
    import time
    import types

    from pipeline.modeling.embed import SentenceTransformerEmbedder

    loads = []

    class Slow:
        def __init__(self, *args, **kwargs):
            loads.append(1)
            time.sleep(0.2)

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=Slow))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(set_num_threads=lambda n: None))
    embedder = SentenceTransformerEmbedder()
    threads = [threading.Thread(target=lambda: embedder.model) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [1]


def test_embed_length_batches_cover_every_row_once_within_the_padding_budget():
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(0, 900, size=500)] + [5000, 0, 0]  # one over budget, empties
    batches = length_batches(lengths, budget=4096, most=64)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for batch in batches:
        widest = max(lengths[i] for i in batch)
        assert 1 <= len(batch) <= 64
        assert len(batch) == 1 or len(batch) * widest <= 4096  # an over-budget text goes alone
    widths = [max(lengths[i] for i in b) for b in batches]
    assert widths == sorted(widths, reverse=True)  # longest first: similar lengths share a batch
    # many short texts fill a batch; long ones share few
    assert len(batches[-1]) == 64 or len(rows) - sum(len(b) for b in batches[:-1]) < 64
    assert len(batches[0]) == 1


def test_embed_length_batches_are_deterministic_with_ties_in_input_order():
    first = length_batches([3, 3, 3, 3], budget=6, most=64)
    assert [b.tolist() for b in first] == [[0, 1], [2, 3]]
    assert [b.tolist() for b in length_batches([], 10, 4)] == []


@pytest.mark.slow
def test_embed_batches_shared_between_two_instances_are_the_same_bits():
    """A large encode shares its batches between two model instances, one torch thread each
    (faster on 2 cores): the vectors must be exactly those of one instance, and torch's thread
    count is given back."""
    import torch

    from pipeline.modeling.embed import SentenceTransformerEmbedder

    texts = [f"turn {i}: " + "so I was thinking about what you said last week " * (1 + i % 7) for i in range(90)]
    texts += ["mm-hmm", "yeah", "I don't know", "fine."] * 5
    embedder = SentenceTransformerEmbedder(instances=2)
    before = torch.get_num_threads()
    try:  # one torch thread per encoder either way: the same kernels on any machine
        torch.set_num_threads(1)
        one = embedder.encode(texts, instances=1)
        torch.set_num_threads(2)
        two = embedder.encode(texts)  # two instances, 2 // 2 threads each
        assert len(embedder._others) == 1 and torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one, two)
    small = SentenceTransformerEmbedder(instances=2)
    small.encode(texts[:2])  # one batch: nothing to share, no second instance loaded
    assert small._others == []


def test_embed_instances_from_the_environment(monkeypatch):
    from pipeline.modeling.embed import ENCODER_INSTANCES_ENV, SentenceTransformerEmbedder, default_instances

    monkeypatch.setenv(ENCODER_INSTANCES_ENV, "1")
    assert default_instances() == 1 and SentenceTransformerEmbedder().instances == 1
    monkeypatch.setenv(ENCODER_INSTANCES_ENV, "3")
    assert default_instances() == 3
    monkeypatch.setenv(ENCODER_INSTANCES_ENV, "two")
    with pytest.raises(ConfigError, match="RUPTURE_CODER_ENCODER_INSTANCES"):
        default_instances()
    monkeypatch.delenv(ENCODER_INSTANCES_ENV)
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert default_instances() == 1
