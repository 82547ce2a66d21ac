"""Fixtures of the model-layer tests: a synthetic labelled corpus built in code, a counting fake
embedder, and small fitted coders on the deterministic ``hashing.v1`` embedder.

In the synthetic corpus a keyword marks each rupture type ("whatever": withdrawal, "pointless":
confrontation) and a repair attempt ("sorry"), so a working model must learn them.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pipeline.modeling.estimator import RuptureCoder
from pipeline.modeling.embed import HashingEmbedder
from pipeline.records import Annotation, Provenance, Session, Turn
from pipeline.preprocess.segment import segment_session

FILLER = ("work", "week", "sister", "dinner", "sleep", "plan", "weekend", "walk", "tired", "office",
          "train", "garden", "money", "phone", "friend", "mother", "school", "morning", "rain",
          "coffee", "bus", "music", "doctor", "holiday", "kitchen", "letter", "game", "shop")
RUPTURE_WORD = {"withdrawal": "whatever", "confrontation": "pointless"}
MARKERS = {"withdrawal": ("withdrawal.minimal_response", "withdrawal.topic_shift"),
           "confrontation": ("confrontation.complaint_progress", "confrontation.complaint_therapist")}
STRATEGIES = ("repair.acknowledge_contribution", "repair.invite_exploration")
SOURCE = "human:test"


def _words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(FILLER) for _ in range(n)]


def synthetic_session(session_id: str, rng: random.Random, pairs: int = 12,
                      p_rupture: float = 0.3) -> Session:
    """Alternating therapist/client turns with gold annotations: a client rupture carries its
    keyword and one marker of its family; the therapist turn after it is a repair ("sorry")."""
    specs: list[tuple[str, str]] = []
    notes: list[tuple[int, str, str]] = []  # (turn, layer, code)
    after_rupture = False
    for _ in range(pairs):
        t = len(specs)
        if after_rupture:
            specs.append(("T", " ".join(["sorry", *_words(rng, 4)])))
            notes += [(t, "repair", "repair"), (t, "strategies", rng.choice(STRATEGIES))]
        else:
            specs.append(("T", " ".join(_words(rng, 5))))
            notes.append((t, "repair", "none"))
        c = len(specs)
        kind = rng.choice(("withdrawal", "confrontation")) if rng.random() < p_rupture else "none"
        words = _words(rng, 6)
        if kind != "none":
            words.insert(rng.randrange(len(words)), RUPTURE_WORD[kind])
            notes.append((c, "markers", rng.choice(MARKERS[kind])))
        specs.append(("C", " ".join(words)))
        notes.append((c, "rupture", kind))
        after_rupture = kind != "none"
    return build_session(session_id, specs, notes)


def build_session(session_id: str, specs, notes=()) -> Session:
    """A segmented Session from ``(speaker_id, text)`` specs and ``(turn, layer, code)`` gold
    notes. Speaker ids starting with "T" are therapists, "I" interpreters ("other"), the rest
    clients; input turn ids are "0", "1", ..."""
    roles = {"T": "therapist", "I": "other"}
    turns = tuple(
        Turn(session_id, i, roles.get(speaker[0], "client"), speaker, text,
             source=Provenance("memory.csv", (i + 2,), (str(i),)))
        for i, (speaker, text) in enumerate(specs))
    annotations = tuple(Annotation(session_id, t, layer, code, 1.0, SOURCE) for t, layer, code in notes)
    return segment_session(Session(session_id, turns, "memory.csv", "csv", annotations))


def synthetic_corpus(n: int = 8, seed: int = 0, prefix: str = "s", **kwargs) -> list[Session]:
    rng = random.Random(seed)
    return [synthetic_session(f"{prefix}{i:02d}", rng, **kwargs) for i in range(n)]


def write_labelled_csv(path: Path, sessions: list[Session]) -> Path:
    """Canonical CSV with label columns (what ``rupture-coder train`` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["session_id", "turn", "speaker", "text", "rupture", "markers", "repair", "strategies"])
        for s in sessions:
            for t in s.turns:
                codes = {layer: ";".join(a.code for a in s.annotations if a.turn == t.index and a.layer == layer)
                         for layer in ("rupture", "markers", "repair", "strategies")}
                writer.writerow([s.session_id, t.index, t.speaker_role, t.text, codes["rupture"],
                                 codes["markers"], codes["repair"], codes["strategies"]])
    return path


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, recording every batch it is asked to encode."""

    def __init__(self, name: str = "counting.v1", dim: int = 16, weights: str = "w1") -> None:
        super().__init__(dim)
        self.name = name
        self.weights = weights
        self.calls: list[list[str]] = []

    @property
    def weights_hash(self) -> str:
        return f"counting-{self.weights}"

    @property
    def encoded(self) -> list[str]:
        return [t for batch in self.calls for t in batch]

    def encode(self, texts) -> np.ndarray:
        self.calls.append(list(texts))
        return super().encode(texts)


@pytest.fixture
def make_corpus() -> Callable[..., list[Session]]:
    """Build a synthetic labelled corpus (see ``synthetic_session``)."""
    return synthetic_corpus


@pytest.fixture
def build() -> Callable[..., Session]:
    """Build a segmented session from specs and gold notes (see ``build_session``)."""
    return build_session


@pytest.fixture(scope="session")
def train_sessions() -> list[Session]:
    return synthetic_corpus(10, seed=0)


@pytest.fixture(scope="session")
def test_sessions() -> list[Session]:
    return synthetic_corpus(6, seed=99, prefix="held")


@pytest.fixture(scope="session")
def fitted(train_sessions) -> RuptureCoder:
    """A logistic-regression coder fitted on the synthetic corpus (shared: do not modify)."""
    with threadpool_limits(1):  # set up before the module-scoped limit below
        return RuptureCoder(embedder="hashing.v1", cv=3).fit(train_sessions)


@pytest.fixture
def counting() -> type[CountingEmbedder]:
    """The counting fake embedder class (hashing vectors; records what it encodes)."""
    return CountingEmbedder


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Single-threaded BLAS/OpenMP in these modules: the heads are tiny, and threads fight over
    the CPU cores (a fit is several times slower with them on a busy 2-core machine)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def labelled_csv(tmp_path_factory, train_sessions, test_sessions) -> dict[str, Path]:
    """The synthetic corpus as canonical CSVs with label columns: ``train`` and ``test``."""
    folder = tmp_path_factory.mktemp("labelled")
    return {"train": write_labelled_csv(folder / "train.csv", train_sessions[:6]),
            "test": write_labelled_csv(folder / "test.csv", test_sessions)}
