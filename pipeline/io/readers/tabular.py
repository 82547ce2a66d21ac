"""Readers for tabular formats: canonical CSV/TSV and JSONL, and the AnnoMI, HLQC and HOPE
CSV exports (which are canonical CSV with known column names)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from pipeline.errors import InputFormatError, Problem
from pipeline.records import ROLES
from .decode import MAX_BYTES, strip_zero_width
from ._build import LABEL_LAYERS, RawRow, ReadOptions, build_sessions, split_codes, time_or_warning

CANONICAL = ("session_id", "turn", "speaker", "speaker_id", "start", "end", "text")
# One turn may be long (a monologue, an ASR dump): allow cells up to the file size limit
# instead of the csv module's 128 KiB default (which read as "unbalanced quotes").
csv.field_size_limit(max(csv.field_size_limit(), MAX_BYTES))
REQUIRED = ("speaker", "text")

# Known exports: canonical field -> column in the export.
PROFILES = {
    "annomi": {"session_id": "transcript_id", "turn": "utterance_id", "speaker": "interlocutor",
               "start": "timestamp", "text": "utterance_text"},
    "hlqc": {"session_id": "conv_id", "turn": "corp_vol_idx", "speaker": "speaker", "text": "vol_text"},
    "hope": {"turn": "ID", "speaker": "Type", "text": "Utterance"},
}
PROFILE_META = {"annomi": ("mi_quality", "topic"), "hlqc": (), "hope": ()}


def detect_profile(header: list[str]) -> str | None:
    cols = {h.strip() for h in header}
    for name, profile in PROFILES.items():
        if set(profile.values()) <= cols:
            return name
    return None


def read_delimited(path: Path, text: str, fmt: str, options: ReadOptions):
    """Read canonical CSV/TSV or a known export profile (fmt 'csv', 'tsv', 'annomi', 'hlqc',
    'hope')."""
    where = str(path)
    delimiter = "\t" if fmt == "tsv" or path.suffix.lower() == ".tsv" else _sniff(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise InputFormatError("no header row", path=where, line=1, fix="add a header row") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    if fmt in PROFILES:
        columns = {**PROFILES[fmt], **options.columns}
    else:
        columns = {name: name for name in CANONICAL + LABEL_LAYERS if name in header}
        columns.update(options.columns)
    _require_columns(columns, header, where, fmt)
    problems = _duplicate_columns(header, {*columns.values(), *PROFILE_META.get(fmt, ())}, where)
    index = {name: header.index(col) for name, col in columns.items() if col in header}
    meta_cols = [header.index(c) for c in PROFILE_META.get(fmt, ()) if c in header]
    rows, meta = [], {}
    default_session = path.stem
    prev_end = reader.line_num  # the header's last line
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise InputFormatError(  # line: where the broken row starts, not where reading ended
                "malformed CSV (truncated file or unbalanced quotes)", path=where,
                line=prev_end + 1, found=str(err), fix="re-export the file; check quoting",
            ) from None
        line, prev_end = prev_end + 1, reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if [c.strip() for c in record] == header:  # concatenated exports repeat the header
            problems.append(Problem("warning", "csv.repeated_header",
                                    "the header row repeated (concatenated exports?); skipped", where, line))
            continue
        if len(record) != len(header):
            problems.append(Problem("warning", "csv.field_count",
                                    f"row has {len(record)} fields, header has {len(header)}",
                                    where, line))
            record = (record + [""] * len(header))[: len(header)]
        values = {name: record[i] for name, i in index.items()}
        row = _row(values, default_session, line, where, problems)
        rows.append(row)
        if meta_cols and row.session_id not in meta:
            meta[row.session_id] = {header[i]: record[i] for i in meta_cols}
    sessions, more = build_sessions(rows, where, fmt, options)
    sessions = [_with_meta(s, meta.get(s.session_id)) for s in sessions]
    return sessions, problems + more


def read_jsonl(path: Path, text: str, fmt: str, options: ReadOptions):
    where = str(path)
    rows, problems = [], []
    # JSON Lines are separated by "\n" only: str.splitlines() would also split inside strings
    # holding U+2028, U+0085 and other Unicode line breaks that json.dumps leaves unescaped.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputFormatError(
                "invalid JSON", path=where, line=line_no, expected="one JSON object per line",
                found=f"{err.msg} at column {err.colno}", fix="repair or remove the line",
            ) from None
        except RecursionError:
            raise InputFormatError("JSON nested too deeply", path=where, line=line_no) from None
        if not isinstance(obj, dict):
            raise InputFormatError("JSON line is not an object", path=where, line=line_no,
                                   expected='{"session_id": ..., "speaker": ..., "text": ...}',
                                   found=type(obj).__name__)
        values = {name: obj.get(col) for name, col in
                  {**{n: n for n in CANONICAL + LABEL_LAYERS}, **options.columns}.items()}
        if values.get("speaker") is None or values.get("text") is None:
            missing = [k for k in REQUIRED if values.get(k) is None]
            raise InputFormatError("JSON line lacks required fields", path=where, line=line_no,
                                   expected="speaker and text fields", found=f"missing {', '.join(missing)}",
                                   fix="add the fields, or map names with --columns")
        rows.append(_row(values, path.stem, line_no, where, problems))
    sessions, more = build_sessions(rows, where, fmt, options)
    return sessions, problems + more


def _row(values: dict, default_session: str, line: int, where: str, problems: list[Problem]) -> RawRow:
    turn = values.get("turn")
    turn_id = None if turn is None or str(turn).strip() == "" else str(turn).strip()
    speaker = strip_zero_width(str(values.get("speaker") or "")).strip()
    speaker_id = str(values.get("speaker_id") or "").strip() or None
    # "client" + speaker_id "client_2": the role is stated; "T" + "dr_lee": the label is mapped
    role = speaker.lower() if speaker_id and speaker.lower() in ROLES else None
    if not speaker:
        raise InputFormatError("empty speaker cell", path=where, line=line,
                               expected="a speaker label (T, C, therapist, client ...)",
                               fix="fill the speaker column")
    labels = {layer: split_codes(values.get(layer)) for layer in LABEL_LAYERS if layer in values}
    session = values.get("session_id")
    return RawRow(
        session_id=str(session).strip() if session not in (None, "") else default_session,
        speaker=speaker, text=str(values.get("text") or ""), line=line, turn_id=turn_id,
        start=time_or_warning(values.get("start"), where, line, problems),
        end=time_or_warning(values.get("end"), where, line, problems),
        order=_order(turn_id), labels={k: v for k, v in labels.items() if v} or None, role=role,
        speaker_id=speaker_id,
    )


def _order(turn_id: str | None) -> float | None:
    """The turn number used for sorting: a finite number, else None ("nan" is no number)."""
    try:
        order = float(turn_id)
    except (TypeError, ValueError):
        return None
    return order if math.isfinite(order) else None


def _require_columns(columns: dict, header: list[str], where: str, fmt: str) -> None:
    missing = [name for name in REQUIRED if columns.get(name) not in header]
    if missing:
        raise InputFormatError(
            f"missing column(s) {', '.join(missing)}", path=where, line=1,
            expected=f"{fmt} columns {', '.join(CANONICAL)} (turn, start, end, session_id optional)",
            found=f"columns {', '.join(_column_names(header[:12]))}",
            fix='map your column names, e.g. --columns "text=utterance,speaker=who"',
        )


def _duplicate_columns(header: list[str], used: set[str], where: str) -> list[Problem]:
    """A column name given twice: an error when the reader uses it (which of the two is meant
    cannot be known), else a warning. Unnamed columns (trailing separators) may repeat."""
    positions: dict[str, list[int]] = {}
    for k, name in enumerate(header, start=1):
        if name:
            positions.setdefault(name, []).append(k)
    problems = []
    for name, where_at in positions.items():
        if len(where_at) < 2:
            continue
        shown = _column_names([name])[0]
        at = f"columns {', '.join(map(str, where_at))}"
        if name in used:
            raise InputFormatError(
                f"duplicate column {shown!r} ({at})", path=where, line=1,
                expected="each column name once in the header row",
                found=f"{len(where_at)} columns named {shown!r}",
                fix="rename or remove all but one of them, or map the one to read with --columns",
            )
        problems.append(Problem("warning", "csv.duplicate_column",
                                f"duplicate column name {shown!r} ({at}); the column is not read",
                                where, 1))
    return problems


def _column_names(cells: list[str]) -> list[str]:
    """Header cells fit to quote in a message: a cell that reads like transcript text (a file
    without a header row) is described by its length instead, so errors never quote turns."""
    return [c if len(c) <= 32 and len(c.split()) <= 3 and not any(p in c for p in ".?!")
            else f"<{len(c)} characters>" for c in cells]


def _sniff(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _with_meta(session, meta):
    if not meta:
        return session
    from dataclasses import replace

    return replace(session, meta={**session.meta, **meta})
