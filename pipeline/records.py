"""The transcript data model: Corpus > Session > Turn, and Annotation layers beside turns.

All records are frozen dataclasses: stages return new objects instead of mutating shared ones.
Gold and predicted labels are never fields of a Turn; they are :class:`Annotation` records in
layers, keyed by ``(session_id, turn index)``, whose ``source`` says who made them
(``model:<name>@<version>`` or ``human:<coder>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
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


# ------------------------------------------------------------------ the turn record on disk

def _doc(kind: str, meaning: str):
    """A TurnRecord field: its on-disk kind (mapped to Arrow/datasets types by the writers) and
    its meaning (the documentation table is generated from it: :func:`turn_record_schema`)."""
    return field(metadata={"kind": kind, "meaning": meaning})


@dataclass(frozen=True)
class CodeScore:
    """A code with its model score (markers of a rupture, strategies of a repair)."""

    code: str
    score: float | None = None


RUPTURE_CLASSES = ("none", "withdrawal", "confrontation")


@dataclass(frozen=True)
class TurnRecord:
    """One coded turn as written to ``turns.jsonl`` / ``turns.csv`` / ``turns.parquet`` and read
    back by review, agreement and corrections. Field order is the on-disk column order."""

    session_id: str = _doc("string", "session id (from the input; `FILE:ID` when two inputs use the same id)")
    turn: int = _doc("int", "0-based index of the turn in the session after segmentation")
    source_turns: tuple[str, ...] = _doc(
        "list<string>", "the input turn ids (e.g. AnnoMI `utterance_id`, HLQC `corp_vol_idx`, Rogers line "
                        "numbers, CSV `turn`) the turn came from")
    source_lines: tuple[int, ...] = _doc("list<int>", "the input lines/rows the turn came from")
    speaker: str = _doc("string", "role: `therapist`, `client` or `other`")
    speaker_id: str = _doc("string", "the speaker label in the input (e.g. `Client 2`)")
    start: float | None = _doc("number?", "seconds from session start (rounded to 4 decimals), or null")
    end: float | None = _doc("number?", "seconds from session start (rounded to 4 decimals), or null")
    text: str = _doc("string", "the text as in the input")
    clean_text: str = _doc("string", "the text without non-verbal notes and markup")
    nonverbal: tuple[str, ...] = _doc("list<string>", "the non-verbal notes")
    rupture: str | None = _doc("string?", "client turns: `none`, `withdrawal` or `confrontation`; null for other speakers")
    rupture_scores: Mapping[str, float] | None = _doc(
        "scores?", "client turns: calibrated probability of each of the three classes (`none`, `withdrawal`, "
                   "`confrontation`)")
    markers: tuple[CodeScore, ...] = _doc(
        "list<code>", "client rupture turns: score = P(marker given a rupture), codes above their threshold "
                      "(at least one of the rupture's family)")
    repair: str | None = _doc("string?", "therapist turns: `repair` or `none`; null for other speakers")
    repair_score: float | None = _doc("number?", "therapist turns: the calibrated probability of a repair attempt")
    strategies: tuple[CodeScore, ...] = _doc("list<code>", "therapist repair turns: score = P(strategy given a repair)")
    uncertainty: float | None = _doc(
        "number?", "1 at the decision threshold, 0 at certainty: how much a human check is needed (review "
                   "batches sort by it); null for `other` speakers")
    model: str = _doc("string", "`name@version` of the model bundle")

    @property
    def key(self) -> tuple[str, int]:
        return (self.session_id, self.turn)

    def codes(self, layer: str) -> tuple[str, ...]:
        """The model's codes of one layer (``rupture``, ``markers``, ``repair``, ``strategies``)."""
        value = getattr(self, layer)
        if isinstance(value, tuple):
            return tuple(v.code for v in value)
        return (value,) if value else ()

    def to_dict(self) -> dict:
        """The JSON-ready record (the line of ``turns.jsonl``), fields in on-disk order."""
        out = {}
        for f in TURN_RECORD_FIELDS:
            value = getattr(self, f.name)
            kind = f.metadata["kind"]
            if kind == "list<code>":
                value = [{"code": v.code, "score": v.score} for v in value]
            elif kind.startswith("list<"):
                value = list(value)
            elif kind == "scores?" and value is not None:
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, record: Mapping) -> "TurnRecord":
        """A record read back from disk; raises ``ValueError`` naming the first bad field (never
        its value: the text fields are transcript text)."""
        if not isinstance(record, Mapping):
            raise ValueError("not a JSON object")
        values = {}
        for f in TURN_RECORD_FIELDS:
            kind, raw = f.metadata["kind"], record.get(f.name)
            try:
                values[f.name] = _from_json(kind, raw, f.name in _REQUIRED)
            except (TypeError, ValueError, KeyError):
                raise ValueError(f"field {f.name!r} is missing or not {_KIND_WORDS[kind]}") from None
        return cls(**values)


_REQUIRED = {"session_id", "turn", "speaker"}
_KIND_WORDS = {"string": "a string", "int": "an integer", "number?": "a number or null",
               "string?": "a string or null", "list<string>": "a list of strings", "list<int>": "a list of integers",
               "scores?": "an object of class probabilities or null", "list<code>": "a list of {code, score} objects"}


def _from_json(kind: str, raw, required: bool):
    if raw is None and not required and kind not in ("int",):
        return {"string": "", "list<string>": (), "list<int>": (), "list<code>": ()}.get(kind)
    if kind == "string" or kind == "string?":
        if not isinstance(raw, str):
            raise TypeError
        return raw
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise TypeError
        return int(raw)
    if kind == "number?":
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise TypeError
        return float(raw)
    if kind == "list<string>":
        return tuple(str(x) for x in _as_list(raw))
    if kind == "list<int>":
        return tuple(int(x) for x in _as_list(raw))
    if kind == "scores?":
        if not isinstance(raw, Mapping):
            raise TypeError
        return {k: (None if raw.get(k) is None else float(raw[k])) for k in RUPTURE_CLASSES}
    if kind == "list<code>":
        return tuple(CodeScore(str(v["code"]), None if v.get("score") is None else float(v["score"]))
                     if isinstance(v, Mapping) else CodeScore(str(v)) for v in _as_list(raw))
    raise AssertionError(kind)


def _as_list(raw):
    if not isinstance(raw, (list, tuple)):
        raise TypeError
    return raw


TURN_RECORD_FIELDS = tuple(f for f in fields(TurnRecord))
TURN_RECORD_TYPES = {"string": "string", "int": "int", "number?": "number or null", "string?": "string or null",
                     "list<string>": "list of strings", "list<int>": "list of ints",
                     "scores?": "object or null", "list<code>": "list of `{code, score}`"}


def turn_record_schema() -> str:
    """The Markdown table of the turn record's fields (docs/formats-and-outputs.md holds it; a
    test keeps the two equal)."""
    rows = ["| field | type | meaning |", "|---|---|---|"]
    rows += [f"| `{f.name}` | {TURN_RECORD_TYPES[f.metadata['kind']]} | {f.metadata['meaning']} |"
             for f in TURN_RECORD_FIELDS]
    return "\n".join(rows)
