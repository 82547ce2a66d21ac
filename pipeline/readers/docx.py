"""Word .docx transcripts: speaker-prefixed paragraphs, or a table with a speaker column and a
text column (an optional time column first)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx

from ..errors import InputFormatError, Problem
from ._build import RawRow, ReadOptions, build_sessions, parse_time
from .roles import RoleMapper
from .text import parse_lines, speaker_labels


def read_docx(path: Path, data: bytes, fmt: str, options: ReadOptions):
    where = str(path)
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise InputFormatError("not a readable .docx file", path=where, found=type(err).__name__,
                               expected="a Word .docx document (not .doc)",
                               fix="open and save it again as .docx, or export as text") from None
    rows = _table_rows(document, path, options)
    problems: list[Problem] = []
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


def _table_rows(document, path: Path, options: ReadOptions) -> list[RawRow]:
    """Rows of the first table with 2 (speaker, text) or 3 (time, speaker, text) columns.
    Row numbers are 1-based table rows; a header row naming 'speaker' is skipped."""
    mapper = RoleMapper(dict(options.roles))
    for table in document.tables:
        cells = [[c.text.strip() for c in row.cells] for row in table.rows]
        if not cells or len(cells[0]) not in (2, 3):
            continue
        out = []
        for r, row in enumerate(cells, start=1):
            time, speaker, text = (row if len(row) == 3 else ("", *row))
            if r == 1 and speaker.lower() in {"speaker", "who", "name"}:
                continue
            if not speaker and out:
                out[-1].text += "\n" + text
                continue
            out.append(RawRow(path.stem, speaker.rstrip(":"), text, r, turn_id=str(r),
                              start=parse_time(time, str(path), r) if time else None))
        if out and sum(mapper.is_known(x.speaker) for x in out) >= len(out) / 2:
            return out
    return []
