"""Turn features: a turn read in the context of the turns before it.

For turn *i* the feature vector holds its own embedding, the embedding of the previous turn of
another speaker (usually the utterance it answers), the speaker's own previous turn, and cheap
cues (position, length, question, negation, second-person address, back-channel, non-verbal
notes, hedges). Only earlier turns are used: a turn's context never includes what follows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pipeline.records import Session, Turn
from pipeline.preprocess.segment import is_backchannel

NEGATION = re.compile(r"\b(no|not|never|nothing|nope|nah|cannot|don'?t|doesn'?t|didn'?t|won'?t|can'?t|isn'?t|"
                      r"aren'?t|wasn'?t|shouldn'?t|wouldn'?t|haven'?t|\w+n't)\b", re.I)
SECOND_PERSON = re.compile(r"\b(you|your|you're|youre|yours|yourself)\b", re.I)
FIRST_PERSON = re.compile(r"\b(i|i'm|im|me|my|myself|i've|i'd)\b", re.I)
HEDGES = re.compile(r"\b(i don'?t know|dunno|whatever|i guess|fine|sure|maybe|kind of|sort of|"
                    r"i suppose|doesn'?t matter|not really)\b", re.I)
WH_START = re.compile(r"^(what|why|how|when|where|who|which|do|does|did|is|are|can|could|would|will|have)\b", re.I)
LAUGH = re.compile(r"laugh|chuckl|giggl", re.I)
PAUSE = re.compile(r"pause|silence|silent", re.I)
N_CUES = 15


@dataclass(frozen=True)
class FeatureConfig:
    """Which context and cue features are used (saved in the model bundle)."""

    context: bool = True
    cues: bool = True
    version: str = "features.v2"


def turn_text(turn: Turn) -> str:
    """The text that is embedded: the cleaned text, or the non-verbal notes of a silent turn."""
    if turn.clean_text:
        return turn.clean_text
    if turn.nonverbal:
        return " ".join(turn.nonverbal)
    return turn.text.strip() or "[no speech]"


def is_question(text: str) -> bool:
    return "?" in text or bool(WH_START.match(text.strip()))


def _plain_apostrophes(text: str) -> str:
    """Typographic apostrophes (don\u2019t, common in Word and ASR output) as ASCII ones, so
    the cue patterns match them."""
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _cues(turn: Turn, n_turns: int, prev_other: Turn | None) -> list[float]:
    text = _plain_apostrophes(turn.clean_text)
    words = len(text.split())
    prev_text = _plain_apostrophes(prev_other.clean_text) if prev_other else ""
    prev_words = len(prev_text.split())
    notes = " ".join(turn.nonverbal)
    return [
        min(turn.index, 200) / 200,  # position from the start only: later turns never matter
        float(np.log1p(words)),
        float(is_question(text)),
        min(3, len(NEGATION.findall(text))) / 3,
        min(3, len(SECOND_PERSON.findall(text))) / 3,
        min(3, len(FIRST_PERSON.findall(text))) / 3,
        min(2, len(HEDGES.findall(text))) / 2,
        float(is_backchannel(text)),
        min(3, len(turn.nonverbal)) / 3,
        float(bool(LAUGH.search(notes))),
        float(bool(PAUSE.search(notes))),
        float(np.log1p(prev_words)),
        float(is_question(prev_text)),
        float(words <= 3 and prev_words >= 8),
        float(prev_other is None),
    ]


def previous_indices(session: Session) -> tuple[list[int | None], list[int | None]]:
    """For each turn: index of the previous turn by another speaker (ignoring ``other``
    speakers such as interpreters when possible) and of the speaker's own previous turn."""
    prev_other: list[int | None] = []
    prev_own: list[int | None] = []
    last_by_speaker: dict[str, int] = {}
    last_by_role: dict[str, int] = {}
    for turn in session.turns:
        candidates = [i for role, i in last_by_role.items()
                      if role != turn.speaker_role and role != "other"]
        if not candidates:
            candidates = [i for sid, i in last_by_speaker.items() if sid != turn.speaker_id]
        prev_other.append(max(candidates) if candidates else None)
        prev_own.append(last_by_speaker.get(turn.speaker_id))
        last_by_speaker[turn.speaker_id] = turn.index
        last_by_role[turn.speaker_role] = turn.index
    return prev_other, prev_own


def session_features(session: Session, embeddings: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Feature matrix (one row per turn) from the session's turn embeddings."""
    n, dim = embeddings.shape
    zero = np.zeros(dim, dtype=np.float32)
    prev_other, prev_own = previous_indices(session)
    rows = []
    for i, turn in enumerate(session.turns):
        parts = [embeddings[i]]
        if config.context:
            parts.append(embeddings[prev_other[i]] if prev_other[i] is not None else zero)
            parts.append(embeddings[prev_own[i]] if prev_own[i] is not None else zero)
        if config.cues:
            other = session.turns[prev_other[i]] if prev_other[i] is not None else None
            parts.append(np.asarray(_cues(turn, n, other), dtype=np.float32))
        rows.append(np.concatenate(parts))
    return np.vstack(rows) if rows else np.zeros((0, dim), dtype=np.float32)


def prior_rupture_features(session: Session, rupture_prob: np.ndarray, window: int = 3) -> np.ndarray:
    """Exchange context from client rupture probabilities (one per turn, 0 for non-client
    turns): max and last of the previous ``window`` client turns, and the previous turn's."""
    out = np.zeros((len(session.turns), 3), dtype=np.float32)
    recent: list[float] = []
    for i, turn in enumerate(session.turns):
        if recent:
            out[i] = (max(recent[-window:]), recent[-1], rupture_prob[i - 1] if i else 0.0)
        if turn.speaker_role == "client":
            recent.append(float(rupture_prob[i]))
    return out
