"""Shared reader machinery: raw rows -> Sessions, with the checks every format needs."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Mapping

from pipeline.codebook import load_codebook
from pipeline.errors import InputFormatError, LabelError, Problem, RuptureCoderError
from pipeline.records import Annotation, Provenance, Session, Turn
from .decode import ZERO_WIDTH_RE, strip_zero_width
from .roles import RoleMapper

LABEL_LAYERS = ("rupture", "markers", "repair", "strategies")
_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)$")
# The latest turn time taken literally (module constant, read at each call; raise it by
# assigning ``pipeline.io.readers._build.MAX_SESSION_SECONDS``): a later one (epoch seconds or
# milliseconds, a typo) is reported once per session and left empty, so that no timeline or
# duration is built from it.
MAX_SESSION_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ReadOptions:
    """Options that apply to every reader (validated at the CLI edge)."""

    fmt: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    label_source: str = "human:input"
    # (dataset, session id, turn id) -> SpeakerCorrection (pipeline.io.speakers); None: none applied
    speaker_corrections: Mapping | None = field(default=None, compare=False, hash=False)


@dataclass
class RawRow:
    session_id: str
    speaker: str
    text: str
    line: int
    turn_id: str | None = None
    start: float | None = None
    end: float | None = None
    order: float | None = None
    labels: dict[str, list[str]] | None = None
    role: str | None = None  # set when the input states the role explicitly
    speaker_id: str | None = None  # set when the input names the speaker apart from the label


def parse_time(value: object, path: str, line: int) -> float | None:
    """Seconds from '12.5', '75', 'mm:ss', 'hh:mm:ss', 'hh:mm:ss.ms' or 'hh:mm:ss,ms'. Minutes
    and seconds after the first field are below 60 ('00:61:00' and '99:99:99' are errors; the
    first field may be larger: '75:30' is 75 minutes 30 seconds)."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.lower() in {"nan", "na", "null", "none"}:
        return None
    try:
        seconds = float(text)
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError
        return seconds
    except ValueError:
        pass
    m = _TIME.match(text)
    if not m:
        raise InputFormatError(
            "unreadable time", path=path, line=line,
            expected="seconds (12.5) or hh:mm:ss(.ms)", found=f"a value of {len(text)} characters",
            fix="fix the start/end cell or map the column away with --columns",
        )
    hours, minutes, secs = m.groups()
    seconds = float(secs.replace(",", "."))
    if seconds >= 60 or (hours is not None and int(minutes) >= 60):
        raise InputFormatError(
            "impossible clock time", path=path, line=line,
            expected="minutes and seconds from 00 to 59 (hh:mm:ss)",
            found="a minutes or seconds field of 60 or more",
            fix="fix the start/end cell or map the column away with --columns",
        )
    return int(hours or 0) * 3600 + int(minutes) * 60 + seconds


def time_or_warning(value: object, path: str, line: int, problems: list[Problem]) -> float | None:
    """``parse_time``, but an unreadable time becomes a warning and None (recoverable)."""
    try:
        return parse_time(value, path, line)
    except InputFormatError as err:
        problems.append(Problem("warning", "turns.bad_time",
                                f"{err.message} ({err.found}); time left empty", path, line))
        return None


def split_codes(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if not text or text.lower() in {"nan", "null"}:
        return []
    return [part.strip() for part in re.split(r"[;|]", text) if part.strip()]


def build_sessions(
    rows: list[RawRow],
    path: str,
    fmt: str,
    options: ReadOptions,
    fixed_roles: dict[str, str] | None = None,
) -> tuple[list[Session], list[Problem]]:
    """Group rows into sessions, map speakers, run the checks. A session with a fatal problem
    is reported as an error Problem and left out; the others are returned."""
    if not rows:
        raise InputFormatError(
            "no turns found", path=path, expected=f"at least one turn in {fmt} format",
            fix="check the file and --format",
        )
    _strip_invisible_labels(rows)
    mapper = RoleMapper({**(fixed_roles or {}), **options.roles})
    first_line: dict[str, int] = {}
    for row in rows:
        if row.role is None:
            first_line.setdefault(row.speaker, row.line)
    mapping = mapper.require(first_line, path)
    grouped: dict[str, list[RawRow]] = defaultdict(list)
    for row in rows:
        grouped[row.session_id].append(row)
    sessions, problems = [], []
    for session_id, session_rows in grouped.items():
        try:
            session, warns = _build_one(session_id, session_rows, mapping, path, fmt, options)
        except RuptureCoderError as err:
            problems.append(problem_from_error(err, "session.invalid", path, session_id))
            continue
        sessions.append(session)
        problems.extend(warns)
    return sessions, problems


def _strip_invisible_labels(rows: list[RawRow]) -> None:
    """Zero-width characters in a speaker label or session id ("\u200bT", "s1\ufeff") would make
    an unmapped speaker or a phantom session: they are removed (turn text keeps them)."""
    for row in rows:
        for name in ("speaker", "speaker_id", "session_id"):
            value = getattr(row, name)
            if value and ZERO_WIDTH_RE.search(value):
                setattr(row, name, strip_zero_width(value).strip() or value)


def problem_from_error(err: RuptureCoderError, code: str, path: str | None = None,
                       session_id: str | None = None) -> Problem:
    """An error Problem that keeps the error's file, line and session as fields (and not
    repeated in the message)."""
    details = (("expected", err.expected), ("found", err.found), ("fix", err.fix))
    message = "; ".join([err.message, *(f"{k} {v}" for k, v in details if v)])
    return Problem("error", code, message, err.path or path, err.line, err.session_id or session_id)


def _build_one(session_id, rows, mapping, path, fmt, options):
    warns: list[Problem] = []
    rows = _check_order(session_id, rows, path, warns)
    _drop_implausible_times(session_id, rows, path, warns)
    turns, annotations = [], []
    for row in rows:
        if not row.text.strip():
            warns.append(Problem("warning", "turns.empty", "empty turn skipped", path, row.line, session_id))
            continue
        role = row.role or mapping[row.speaker]
        speaker_id, meta = (row.speaker_id or row.speaker).strip(), {}
        fixed = _correction(options, fmt, session_id, row)
        if fixed is not None and fixed.kind == "swap" and fixed.speaker_true != role:
            meta = {"speaker_corrected_from": role}
            role = fixed.speaker_true
            speaker_id = _speaker_of(role, rows, mapping, speaker_id)
        elif fixed is not None and fixed.kind == "merged":
            meta = {"merged_speakers": True}
        index = len(turns)
        turns.append(
            Turn(
                session_id=session_id, index=index, speaker_role=role,
                speaker_id=speaker_id, text=row.text,
                start_s=row.start, end_s=row.end,
                source=Provenance(path, (row.line,), (row.turn_id,) if row.turn_id is not None else ()),
                meta=meta,
            )
        )
        if row.labels:
            annotations.extend(_labels(row, role, index, path, options.label_source))
    if not turns:
        raise InputFormatError("session has no non-empty turns", path=path, session_id=session_id)
    _check_times(turns, path, warns)
    roles = {t.speaker_role for t in turns}
    if len(roles - {"other"}) < 2:
        warns.append(Problem(
            "warning", "session.one_speaker",
            f"only {', '.join(sorted(roles))} turns: check the speaker column or --roles",
            path, rows[0].line, session_id,
        ))
    return Session(session_id, tuple(turns), path, fmt, tuple(annotations)), warns


def _correction(options, fmt, session_id, row):
    table = options.speaker_corrections
    if not table or row.turn_id is None:
        return None
    return table.get((fmt, session_id, str(row.turn_id)))


def _speaker_of(role, rows, mapping, fallback):
    """The speaker label this session uses for ``role`` (a corrected turn joins that speaker)."""
    for other in rows:
        if (other.role or mapping.get(other.speaker)) == role:
            return (other.speaker_id or other.speaker).strip()
    return role


def _check_order(session_id, rows, path, warns):
    ids = [r.turn_id for r in rows if r.turn_id is not None]
    dup = [k for k, n in Counter(ids).items() if n > 1]
    if dup:
        line = next(r.line for r in rows if r.turn_id == dup[0])
        raise InputFormatError(
            f"duplicate turn id(s) {', '.join(map(repr, dup[:5]))}", path=path, line=line,
            session_id=session_id, expected="each turn id once per session",
            fix="remove duplicated rows or renumber the turns",
        )
    orders = [r.order for r in rows]
    if all(o is not None for o in orders) and orders != sorted(orders):
        bad = next(r for r, prev in zip(rows[1:], rows) if r.order < prev.order)
        warns.append(Problem("warning", "turns.out_of_order",
                             "turn numbers not increasing; rows sorted by turn number",
                             path, bad.line, session_id))
        rows = sorted(rows, key=lambda r: r.order)
    return rows


def _drop_implausible_times(session_id, rows, path, warns):
    """Times beyond ``MAX_SESSION_SECONDS`` are left empty, with one warning per session naming
    the first line and the count (a file of epoch times would otherwise give one per row)."""
    limit = MAX_SESSION_SECONDS
    bad = []
    for row in rows:
        if (row.start is not None and row.start > limit) or (row.end is not None and row.end > limit):
            bad.append(row.line)
            row.start = row.start if row.start is None or row.start <= limit else None
            row.end = row.end if row.end is None or row.end <= limit else None
    if bad:
        warns.append(Problem(
            "warning", "turns.implausible_time",
            f"{len(bad)} turn(s) with a time beyond {limit / 3600:g} hours; times left empty "
            "(expected seconds from the start of the session, not clock or epoch times; "
            "fix: convert the times, or raise pipeline.io.readers._build.MAX_SESSION_SECONDS)",
            path, bad[0], session_id,
        ))


def _check_times(turns, path, warns):
    last = None
    for turn in turns:
        if turn.start_s is not None and turn.end_s is not None and turn.end_s < turn.start_s:
            warns.append(Problem("warning", "turns.end_before_start", "turn ends before it starts",
                                 path, turn.source.lines[0], turn.session_id))
        if turn.start_s is not None:
            if last is not None and turn.start_s < last:
                warns.append(Problem("warning", "turns.non_monotonic_time",
                                     "start time earlier than the previous turn's",
                                     path, turn.source.lines[0], turn.session_id))
            last = turn.start_s


def _labels(row: RawRow, role: str, index: int, path: str, source: str) -> list[Annotation]:
    book = load_codebook()
    out = []
    for layer in LABEL_LAYERS:
        codes = row.labels.get(layer) or []
        if not codes:
            continue
        spec = book.layer(layer)
        if spec.applies_to != role:
            if codes == [spec.default] or codes == ["none"]:
                continue
            raise LabelError(
                f"{layer} label on a {role} turn", path=path, line=row.line,
                session_id=row.session_id, expected=f"{layer} codes only on {spec.applies_to} turns",
                fix=f"clear the {layer} cell of this row",
            )
        try:
            codes = book.validate(layer, codes)
        except RuptureCoderError as err:
            raise LabelError(err.message, path=path, line=row.line, session_id=row.session_id,
                             expected=err.expected, fix=err.fix) from None
        out.extend(Annotation(row.session_id, index, layer, c, 1.0, source, book.scheme) for c in codes)
    return out
