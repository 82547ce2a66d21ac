"""The transcript data model: Corpus > Session > Turn, and Annotation layers beside turns.

All records are frozen dataclasses: stages return new objects instead of mutating shared ones.
Gold and predicted labels are never fields of a Turn; they are :class:`Annotation` records in
layers, keyed by ``(session_id, turn index)``, whose ``source`` says who made them
(``model:<name>@<version>`` or ``human:<coder>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Mapping

ROLES = ("therapist", "client", "other")


@dataclass(frozen=True)
class Provenance:
    """Where a turn came from: the input file, its lines/rows and its input turn ids."""

    path: str
    lines: tuple[int, ...] = ()  # 1-based line numbers (text formats) or data row numbers
    turn_ids: tuple[str, ...] = ()  # input turn ids (e.g. utterance_id, corp_vol_idx, line no.)

    def merged(self, other: "Provenance") -> "Provenance":
        return Provenance(self.path, self.lines + other.lines, self.turn_ids + other.turn_ids)


@dataclass(frozen=True)
class Turn:
    """One speaker turn.

    ``text`` is the text as spoken (as read from the input, only line breaks joined);
    ``clean_text`` has non-verbal notes and markup removed and whitespace normalised;
    ``nonverbal`` holds the notes (e.g. ``"[sighs]"``, ``"(long pause)"``) in order;
    ``utterances`` holds sentence-level units when a long turn was split (else one item).
    """

    session_id: str
    index: int
    speaker_role: str
    speaker_id: str
    text: str
    clean_text: str = ""
    start_s: float | None = None
    end_s: float | None = None
    nonverbal: tuple[str, ...] = ()
    utterances: tuple[str, ...] = ()
    source: Provenance = field(default_factory=lambda: Provenance(""))
    meta: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.session_id, self.index)


@dataclass(frozen=True)
class Annotation:
    """One code in one layer for one turn.

    ``layer`` is one of the scheme's layers (``rupture``, ``markers``, ``repair``,
    ``strategies``); multi-code layers have one Annotation per code. ``score`` is the model
    probability, or 1.0 for a human code.
    """

    session_id: str
    turn: int
    layer: str
    code: str
    score: float = 1.0
    source: str = "human:unknown"
    scheme: str = "rupture_v1"

    @property
    def key(self) -> tuple[str, int]:
        return (self.session_id, self.turn)


@dataclass(frozen=True)
class Session:
    """A whole session: its turns in order, plus where it came from."""

    session_id: str
    turns: tuple[Turn, ...]
    source_path: str = ""
    source_format: str = ""
    annotations: tuple[Annotation, ...] = ()
    meta: Mapping[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def duration_s(self) -> float | None:
        times = [t.end_s if t.end_s is not None else t.start_s for t in self.turns]
        known = [x for x in times if x is not None]
        starts = [t.start_s for t in self.turns if t.start_s is not None]
        if not known or not starts:
            return None
        return max(known) - min(starts)

    def role_counts(self) -> dict[str, int]:
        counts = {role: 0 for role in ROLES}
        for turn in self.turns:
            counts[turn.speaker_role] = counts.get(turn.speaker_role, 0) + 1
        return counts

    def layer(self, layer: str, source_prefix: str | None = None) -> list[Annotation]:
        """Annotations of one layer, optionally only those whose source starts with a prefix."""
        return [
            a
            for a in self.annotations
            if a.layer == layer and (source_prefix is None or a.source.startswith(source_prefix))
        ]

    def with_annotations(self, annotations: Iterable[Annotation]) -> "Session":
        """A new session with extra annotations appended (existing ones are kept)."""
        return replace(self, annotations=self.annotations + tuple(annotations))

    def context(self, index: int, k: int | None = None) -> tuple[Turn, ...]:
        """The turns before ``index`` (at most ``k`` of them): a turn's context never includes
        itself or anything after it."""
        before = self.turns[:index]
        return before if k is None else before[max(0, index - k) :]


@dataclass(frozen=True)
class Corpus:
    """An ordered collection of sessions."""

    sessions: tuple[Session, ...] = ()

    def __iter__(self) -> Iterator[Session]:
        return iter(self.sessions)

    def __len__(self) -> int:
        return len(self.sessions)

    @property
    def n_turns(self) -> int:
        return sum(len(s.turns) for s in self.sessions)

    def session(self, session_id: str) -> Session:
        for session in self.sessions:
            if session.session_id == session_id:
                return session
        raise KeyError(session_id)
