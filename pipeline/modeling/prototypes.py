"""Zero-shot baseline: the coding manual's definitions and examples as prototypes.

Each code's prototype is the mean embedding of its definition (from the label file) and the
coded turns of its examples in ``annotation_guides/rupture_v1_coding_manual.md``. A turn is
scored by cosine similarity to the prototypes (softmax with a fixed temperature). Nothing is
learned from labelled data, so it shows what the guide alone gives.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from pipeline.modeling.estimator import RuptureCoder, SessionScores
from pipeline.codebook import load_codebook
from pipeline.modeling.embed import embed_cached, embed_texts, get_embedder
from pipeline.modeling.features import turn_text
from pipeline.resources import resource
from pipeline.preprocess.segment import extract_nonverbal

SECTION = re.compile(r"^### `([a-z_.]+)`", re.M)
CODED_TURN = re.compile(r"→\s*\*\*[^*]+:\*\*\s*(.+?)\\?\s*$", re.M)
CODE_LINE = re.compile(r"Code:\s*`([a-z_.]+)`")
TEMPERATURE = 0.05


def guide_examples() -> dict[str, list[str]]:
    """Coded example turns per code, parsed from the coding manual."""
    text = resource("annotation_guides", "rupture_v1_coding_manual.md").read_text(encoding="utf-8")
    out: dict[str, list[str]] = defaultdict(list)
    for block in re.split(r"\n(?=\d+\. )", text):
        turn, code = CODED_TURN.search(block), CODE_LINE.search(block)
        if turn and code:
            out[code.group(1)].append(extract_nonverbal(turn.group(1).strip())[0])
    return dict(out)


def _softmax(sims: np.ndarray) -> np.ndarray:
    z = sims / TEMPERATURE
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class PrototypeCoder(RuptureCoder):
    """Zero-shot coder; ``fit`` only builds prototypes (it ignores the sessions' labels)."""

    def fit(self, sessions=None, y=None) -> "PrototypeCoder":
        book = load_codebook()
        self.markers_, self.strategies_ = book.markers, book.strategies
        self.scheme_ = f"{book.scheme}@{book.version}"
        examples = guide_examples()
        embedder = get_embedder(self.embedder)

        def proto(codes: list[str]) -> np.ndarray:
            texts = [t for c in codes for t in examples.get(c, [])]
            texts += [book.code(c).description for c in codes if book.code(c).description]
            v = embed_texts(texts, embedder).mean(axis=0)
            return v / (np.linalg.norm(v) or 1.0)

        withdrawal = [m for m in self.markers_ if m.startswith("withdrawal.")]
        confrontation = [m for m in self.markers_ if m.startswith("confrontation.")]
        self.rupture_protos_ = np.stack([proto(["none"]), proto(["withdrawal", *withdrawal]),
                                         proto(["confrontation", *confrontation])])
        self.marker_protos_ = np.stack([proto([m]) for m in self.markers_])
        self.repair_protos_ = np.stack([proto(["none"]), proto(["repair", *self.strategies_])])
        self.strategy_protos_ = np.stack([proto([s]) for s in self.strategies_])
        self.rupture_model_ = "prototypes"
        self.rupture_threshold_ = 0.5
        self.repair_threshold_ = 0.5
        self.has_repair_ = True
        self.marker_thresholds_ = np.full(len(self.markers_), 0.5)
        self.strategy_thresholds_ = np.full(len(self.strategies_), 0.5)
        self.n_train_sessions_ = self.n_client_turns_ = self.n_therapist_turns_ = 0
        return self

    def predict_proba(self, sessions) -> list[SessionScores]:
        self._check_fitted()
        embedder = get_embedder(self.embedder)
        out = []
        for s in sessions:
            e = embed_cached([turn_text(t) for t in s.turns], embedder, self.cache_dir)
            roles = np.array([t.speaker_role for t in s.turns])
            n = len(s.turns)
            rup, mk = np.full((n, 3), np.nan), np.full((n, len(self.markers_)), np.nan)
            rep, st = np.full(n, np.nan), np.full((n, len(self.strategies_)), np.nan)
            c, t = roles == "client", roles == "therapist"
            rup[c] = _softmax(e[c] @ self.rupture_protos_.T)
            mk[c] = _softmax(e[c] @ self.marker_protos_.T)
            rep[t] = _softmax(e[t] @ self.repair_protos_.T)[:, 1]
            st[t] = _softmax(e[t] @ self.strategy_protos_.T)
            out.append(SessionScores(s.session_id, rup, mk, rep, st))
        return out
