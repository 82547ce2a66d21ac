"""Turning a file's bytes into text: BOMs, UTF-16, cp1252 fallback, binary detection.

Limits (module constants; a library caller may raise them by assigning the attribute, e.g.
``pipeline.io.readers.decode.MAX_BYTES = 2 * 2**30``; they are read at each call):

- ``MAX_BYTES``: the largest input file read (a bigger one is refused before it is read).

Only regular files are read: a named pipe, a device (``/dev/zero``) or a socket is refused
before it is opened for reading, so that it can neither hang the run nor fill the memory.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path

from pipeline.errors import InputFormatError, Problem

MAX_BYTES = 512 * 1024 * 1024

BOM = "\ufeff"
# Characters of no width: a speaker label holding one ("\u200bT:") reads as no label at all.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
ZERO_WIDTH_RE = re.compile(f"[{ZERO_WIDTH}]")
# os.O_NONBLOCK: opening a named pipe that appeared after the check returns at once instead
# of waiting for a writer (the file is then refused by its fstat)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def strip_zero_width(text: str) -> str:
    """``text`` without zero-width characters (for speaker labels; turn text keeps them)."""
    return ZERO_WIDTH_RE.sub("", text)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a named pipe (FIFO)", "a character device")."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_text(path: Path) -> tuple[str, list[Problem]]:
    """Read a text file, returning its text and any encoding warnings.

    UTF-8 (with or without BOM) and UTF-16 (with BOM, or BOM-less with the tell-tale NUL
    pattern) are decoded silently; undecodable UTF-8 falls back to cp1252 with a warning.
    Empty and binary files raise :class:`InputFormatError`.
    """
    data = read_bytes(path)
    return decode_bytes(data, str(path))


def read_bytes(path: Path) -> bytes:
    """The file's bytes; a file that is not a regular file or is over ``MAX_BYTES`` is refused
    (checked before opening, and again on the opened file, which is never read past the limit)."""
    try:
        _check_regular(path, os.stat(path))
        fd = os.open(path, _OPEN_FLAGS)
        with open(fd, "rb", buffering=0) as fh:
            st = os.fstat(fh.fileno())
            _check_regular(path, st)  # replaced between the check and the open
            return _read_bounded(path, fh, st.st_size)
    except IsADirectoryError:
        raise InputFormatError("is a directory, not a file", path=path) from None
    except PermissionError:
        raise InputFormatError(
            "cannot read file (permission denied)", path=path, fix="check the file's permissions"
        ) from None
    except FileNotFoundError:
        raise InputFormatError("file not found", path=path, fix="check the path") from None
    except OSError as err:
        raise InputFormatError("cannot read file", path=path, found=err.strerror or str(err)) from None


def _read_bounded(path: Path, fh, size: int) -> bytes:
    """All of ``fh``: one read for a file of the size stat gave, then growing steps past it (a
    file still being written), refused past ``MAX_BYTES``; memory is never reserved up front
    for the limit (a read reserves what it asks for)."""
    chunks, total, step = [], 0, min(size, MAX_BYTES) + 1
    while chunk := fh.read(min(step, MAX_BYTES + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_BYTES:
            _too_large(path, f"more than {MAX_BYTES // 2**20} MiB")
        step = min(2 * step, 16 * 2**20) if len(chunks) > 1 else 2**16  # probe for the end first
    return b"".join(chunks)


def _check_regular(path: Path, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError
    if not stat.S_ISREG(st.st_mode):
        raise InputFormatError(
            "not a regular file", path=path, expected="a transcript file",
            found=file_kind(st.st_mode),
            fix="copy the transcript into an ordinary file and give that file's path",
        )
    if st.st_size > MAX_BYTES:
        _too_large(path, f"{st.st_size // 2**20} MiB")


def _too_large(path: Path, found: str) -> None:
    raise InputFormatError(
        "file too large", path=path, expected=f"at most {MAX_BYTES // 2**20} MiB", found=found,
        fix="split the transcript file (or raise pipeline.io.readers.decode.MAX_BYTES)",
    )


def decode_bytes(data: bytes, where: str) -> tuple[str, list[Problem]]:
    """The text of ``data``, and encoding warnings. Byte-order marks are removed wherever they
    are: one in mid-file (concatenated exports) would otherwise start a session id or a speaker
    label with an invisible character."""
    text, problems = _decode(data, where)
    return text.replace(BOM, "") if BOM in text else text, problems


def _decode(data: bytes, where: str) -> tuple[str, list[Problem]]:
    if not data.strip():
        raise InputFormatError(
            "file is empty", path=where, expected="a transcript with at least one turn",
            fix="check that the export finished writing",
        )
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[3:], "utf-8", where), []
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "utf-16", where), []
    utf16 = _bomless_utf16(data)
    if utf16:
        return _strict(data, utf16, where), []
    if b"\x00" in data:
        raise InputFormatError(
            "file looks binary (contains NUL bytes)", path=where,
            expected="a text, CSV, JSONL, subtitle or .docx transcript",
            fix="export the transcript as text or CSV",
        )
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        # Byte by byte: valid UTF-8 stays UTF-8 and only the undecodable bytes are read as
        # cp1252, so a file with mixed encodings (pasted parts, concatenated exports) keeps
        # its UTF-8 parts intact; a whole cp1252 file decodes as cp1252.
        text = data.decode("utf-8", errors=_CP1252_FALLBACK)
        warn = Problem(
            "warning", "encoding.cp1252",
            "not valid UTF-8; decoded as cp1252 (Windows-1252) where not UTF-8; check accented characters",
            path=where, line=line,
        )
        return text, [warn]


def _cp1252_bytes(err: UnicodeDecodeError) -> tuple[str, int]:
    chunk = err.object[err.start:err.end]
    return chunk.decode("cp1252", errors="replace"), err.end


_CP1252_FALLBACK = "rupture-coder-cp1252"
codecs.register_error(_CP1252_FALLBACK, _cp1252_bytes)


def _strict(data: bytes, encoding: str, where: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise InputFormatError(
            f"file is not valid {encoding.upper()}", path=where,
            found=f"undecodable bytes at byte offset {err.start}",
            fix="re-export the file as UTF-8",
        ) from None


def _bomless_utf16(data: bytes) -> str | None:
    sample = data[:4000]
    if len(sample) < 4:
        return None
    even_nul = sample[0::2].count(0) / max(1, len(sample[0::2]))
    odd_nul = sample[1::2].count(0) / max(1, len(sample[1::2]))
    if odd_nul > 0.4 and even_nul < 0.05:
        return "utf-16-le"
    if even_nul > 0.4 and odd_nul < 0.05:
        return "utf-16-be"
    return None
