"""SetFit-style contrastive fine-tuning of the sentence encoder (an experiment for the model
comparison; the shipped model does not use it unless it wins).

Pairs of labelled turns are drawn (same rupture/repair class -> similarity 1, different -> 0) and
the packaged MiniLM is fine-tuned with a cosine-similarity loss, as SetFit does; the usual
classifier heads are then trained on the fine-tuned embeddings. Runs on the CPU (slowly).
"""

from __future__ import annotations

import hashlib
import logging
import random

import numpy as np

from pipeline.modeling.estimator import gold_arrays
from pipeline.codebook import load_codebook
from pipeline.modeling.embed import SentenceTransformerEmbedder, register_embedder
from pipeline.modeling.features import turn_text
from pipeline.records import Session

log = logging.getLogger(__name__)


def labelled_texts(sessions: list[Session]) -> list[tuple[str, str]]:
    """(text, class) for labelled client and therapist turns; class names keep roles apart."""
    book = load_codebook()
    out = []
    for s in sessions:
        gold = gold_arrays(s, book)
        for t in s.turns:
            if t.speaker_role == "client" and gold["rupture"][t.index] is not None:
                out.append((turn_text(t), f"client:{gold['rupture'][t.index]}"))
            elif t.speaker_role == "therapist" and gold["repair"][t.index] is not None:
                out.append((turn_text(t), f"therapist:{gold['repair'][t.index]}"))
    return out


def make_pairs(items: list[tuple[str, str]], n_pairs: int, seed: int = 0) -> list[tuple[str, str, float]]:
    """Balanced pairs: half positive (same class), half negative, oversampling rare classes."""
    rng = random.Random(seed)
    by_class: dict[str, list[str]] = {}
    for text, label in items:
        by_class.setdefault(label, []).append(text)
    labels = sorted(by_class)
    pairs = []
    for k in range(n_pairs):
        a = labels[k % len(labels)]
        if k % 2 == 0:
            pairs.append((rng.choice(by_class[a]), rng.choice(by_class[a]), 1.0))
        else:
            b = rng.choice([x for x in labels if x != a])
            pairs.append((rng.choice(by_class[a]), rng.choice(by_class[b]), 0.0))
    return pairs


class FineTunedEmbedder(SentenceTransformerEmbedder):
    """The packaged MiniLM after contrastive fine-tuning (held in memory)."""

    name = "minilm-l6-setfit.v1"
    model_id = "all-MiniLM-L6-v2 fine-tuned contrastively on rupture_v1 labels (in memory)"

    def __init__(self, model) -> None:
        super().__init__()
        self._model = model
        digest = hashlib.sha256()
        for tensor in model.state_dict().values():
            digest.update(tensor.detach().cpu().numpy().tobytes())
        self._hash = "sha256:" + digest.hexdigest()

    @property
    def weights_hash(self) -> str:
        return self._hash


def contrastive_finetune(sessions: list[Session], n_pairs: int = 2000, epochs: int = 1, batch_size: int = 16,
                         lr: float = 2e-5, seed: int = 0, max_tokens: int | None = None) -> FineTunedEmbedder:
    """Fine-tune a fresh copy of the packaged encoder; register it under
    ``minilm-l6-setfit.v1`` for this process and return it."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    base = SentenceTransformerEmbedder()
    model = SentenceTransformer(str(base.model_path), device="cpu", local_files_only=True)
    pairs = make_pairs(labelled_texts(sessions), n_pairs, seed)
    full_length = model.max_seq_length
    if max_tokens:  # shorter inputs while training only (CPU cost grows with length); encoding uses the full length
        model.max_seq_length = max_tokens
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        random.Random(seed + epoch).shuffle(pairs)
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start:start + batch_size]
            a = model(model.tokenize([p[0] for p in batch]))["sentence_embedding"]
            b = model(model.tokenize([p[1] for p in batch]))["sentence_embedding"]
            target = torch.tensor([p[2] for p in batch], dtype=torch.float32)
            loss = torch.nn.functional.mse_loss(torch.nn.functional.cosine_similarity(a, b), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        log.info("contrastive epoch %d done (%d pairs)", epoch + 1, len(pairs))
    model.eval()
    model.max_seq_length = full_length
    embedder = FineTunedEmbedder(model)
    register_embedder(embedder.name, lambda: embedder)
    from pipeline.modeling.embed import get_embedder

    get_embedder.cache_clear()
    return embedder


def pair_agreement(embedder, pairs: list[tuple[str, str, float]]) -> float:
    """Share of pairs whose cosine similarity falls on the right side of 0.5 (a sanity check)."""
    a = embedder.encode([p[0] for p in pairs])
    b = embedder.encode([p[1] for p in pairs])
    sims = (a * b).sum(axis=1)
    return float(np.mean((sims > 0.5) == (np.array([p[2] for p in pairs]) > 0.5)))
