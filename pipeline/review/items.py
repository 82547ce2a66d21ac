"""Review items: one coded turn put in front of an annotator, and its stable id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class ReviewItem:
    """One turn to review: who said it, what came before, and the model's codes by layer."""

    item_id: str
    session_id: str
    turn: int
    speaker: str
    speaker_id: str
    text: str
    context: tuple[tuple[str, str], ...]  # (speaker id, text), oldest first
    model_codes: Mapping[str, tuple[str, ...]]
    uncertainty: float | None
    model: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.session_id, self.turn)


def item_id(session_id: str, turn: int) -> str:
    """The stable id of a review row: ``<session_id>:<turn>``."""
    return f"{session_id}:{turn}"


def parse_item_id(value: str) -> tuple[str, int] | None:
    """``(session_id, turn)`` from an item id, or None when it is not one."""
    session_id, sep, turn = value.rpartition(":")
    if not sep or not session_id or not turn.isdigit():
        return None
    return session_id, int(turn)
