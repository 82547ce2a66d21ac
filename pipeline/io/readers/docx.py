"""Word .docx transcripts: speaker-prefixed paragraphs, or a table with a speaker column and a
text column (an optional time column first).

A .docx file is a zip archive, and python-docx holds every part in memory and parses the XML
into a tree (about 20 bytes of memory per byte of XML). The archive is checked before
python-docx opens it, each part read through a bounded stream (a part's declared size is not
trusted), against these limits (module constants, read at each call; a library caller may raise
them by assigning the attribute, e.g. ``pipeline.io.readers.docx.MAX_UNCOMPRESSED_BYTES``):

- ``MAX_UNCOMPRESSED_BYTES``: all parts together, decompressed;
- ``MAX_RATIO``: decompressed to compressed size of one part (over ``RATIO_FLOOR`` bytes), the
  mark of a zip bomb (Word's own XML compresses about 10 to 40 times);
- ``MAX_PARAGRAPHS``: paragraphs in the XML parts (each may become a turn).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import docx

from pipeline.errors import InputFormatError, Problem
from ._build import RawRow, ReadOptions, build_sessions, time_or_warning
from .roles import RoleMapper
from .text import parse_lines, speaker_labels

MAX_UNCOMPRESSED_BYTES = 64 * 2**20
MAX_RATIO = 100
RATIO_FLOOR = 2**20
MAX_PARAGRAPHS = 100_000
_CHUNK = 2**20
_PARAGRAPH = re.compile(rb"<w:p[\s/>]")  # 5 bytes: a tail of 4 finds one cut between two chunks
_UNREADABLE = {"expected": "a Word .docx document (not .doc)",
               "fix": "open and save it again as .docx, or export as text"}


def read_docx(path: Path, data: bytes, fmt: str, options: ReadOptions):
    where = str(path)
    check_archive(data, where)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as err:  # python-docx raises zip, OPC, XML and key errors of many types
        raise InputFormatError("not a readable .docx file", path=where, found=type(err).__name__,
                               **_UNREADABLE) from None
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


def check_archive(data: bytes, where: str) -> None:
    """Refuse a .docx archive over the limits (see the module's docstring) before it is parsed:
    declared sizes first, then every part decompressed in bounded chunks and counted (a part
    may lie about its size), so that memory and time stay bounded whatever the archive holds."""
    limit = MAX_UNCOMPRESSED_BYTES
    if len(data) > limit:
        _refuse(where, "file too large for a .docx transcript", f"{len(data) // 2**20} MiB")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except Exception as err:  # BadZipFile, and struct/value errors of a damaged directory
        raise InputFormatError("not a readable .docx file", path=where, found=type(err).__name__,
                               **_UNREADABLE) from None
    declared = sum(m.file_size for m in members)
    if declared > limit:
        _refuse(where, "decompresses to too much data", f"{declared // 2**20} MiB declared")
    for member in members:
        _check_ratio(where, member.file_size, member.compress_size)
    total = paragraphs = 0
    for member in members:
        size, tail = 0, b""
        try:
            with archive.open(member) as stream:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if total > limit:
                        _refuse(where, "decompresses to too much data", f"more than {limit // 2**20} MiB")
                    _check_ratio(where, size, member.compress_size)
                    if member.filename.lower().endswith(".xml"):
                        window = tail + chunk
                        paragraphs += sum(1 for _ in _PARAGRAPH.finditer(window))
                        tail = window[-4:]
                        if paragraphs > MAX_PARAGRAPHS:
                            _refuse(where, "too many paragraphs", f"more than {MAX_PARAGRAPHS:,}",
                                    expected=f"at most {MAX_PARAGRAPHS:,} paragraphs",
                                    fix="split the document into several files")
        except InputFormatError:
            raise
        except Exception as err:  # bad CRC, encrypted or unsupported compression, truncated data
            raise InputFormatError("not a readable .docx file", path=where, found=type(err).__name__,
                                   **_UNREADABLE) from None


def _check_ratio(where: str, size: int, compressed: int) -> None:
    if size > RATIO_FLOOR and size > MAX_RATIO * max(compressed, 1):
        _refuse(where, "compressed too densely to be a transcript (a zip bomb?)",
                f"a part decompressing {size // max(compressed, 1):,} times its size",
                expected=f"parts at most {MAX_RATIO} times their compressed size")


def _refuse(where: str, message: str, found: str, expected: str | None = None, fix: str | None = None):
    raise InputFormatError(
        message, path=where, found=found,
        expected=expected or f"a .docx of at most {MAX_UNCOMPRESSED_BYTES // 2**20} MiB decompressed",
        fix=fix or "export the transcript as text or CSV, or remove images from the document "
                   "(the limits are in pipeline.io.readers.docx)",
    )
