"""Word .docx transcripts: speaker-prefixed paragraphs, or a table with a speaker column and a
text column (an optional time column first)."""

from __future__ import annotations

import io
from pathlib import Path

import docx

from pipeline.errors import InputFormatError, Problem
from ._build import RawRow, ReadOptions, build_sessions, time_or_warning
from .roles import RoleMapper
from .text import parse_lines, speaker_labels


def read_docx(path: Path, data: bytes, fmt: str, options: ReadOptions):
    where = str(path)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as err:  # python-docx raises zip, OPC, XML and key errors of many types
        raise InputFormatError("not a readable .docx file", path=where, found=type(err).__name__,
                               expected="a Word .docx document (not .doc)",
                               fix="open and save it again as .docx, or export as text") from None
    problems: list[Problem] = []
    rows = _table_rows(document, path, options, problems)
    if not rows:
        paragraphs = [p.text for p in document.paragraphs]
        speakers = speaker_labels(paragraphs, RoleMapper(dict(options.roles)))
        rows, skipped = parse_lines(list(enumerate(paragraphs, start=1)), path.stem, speakers)
        if skipped:
            problems.append(Problem("warning", "text.preamble_skipped",
                                    f"{skipped} paragraph(s) before the first speaker turn skipped",
                                    where, 1))
    sessions, more = build_sessions(rows, where, fmt, options)
    return sessions, problems + more


def _table_rows(document, path: Path, options: ReadOptions, problems: list[Problem]) -> list[RawRow]:
    """Rows of the first table with 2 (speaker, text) or 3 (time, speaker, text) columns.
    Row numbers are 1-based table rows; a header row naming 'speaker' is skipped; an
    unreadable time is a warning (time left empty)."""
    mapper = RoleMapper(dict(options.roles))
    for table in document.tables:
        cells = [[c.text.strip() for c in row.cells] for row in table.rows]
        if not cells or len(cells[0]) not in (2, 3):
            continue
        out, warns = [], []
        width = len(cells[0])
        for r, row in enumerate(cells, start=1):
            row = (row + [""] * width)[:width]  # rows of merged cells can be shorter
            time, speaker, text = (row if width == 3 else ("", *row))
            if r == 1 and speaker.lower() in {"speaker", "who", "name"}:
                continue
            if not speaker and out:
                out[-1].text += "\n" + text
                continue
            out.append(RawRow(path.stem, speaker.rstrip(":"), text, r, turn_id=str(r),
                              start=time_or_warning(time, str(path), r, warns)))
        if out and sum(mapper.is_known(x.speaker) for x in out) >= len(out) / 2:
            problems.extend(warns)
            return out
    return []
