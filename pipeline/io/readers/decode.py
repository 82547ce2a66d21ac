"""Turning a file's bytes into text: BOMs, UTF-16, cp1252 fallback, binary detection."""

from __future__ import annotations

import codecs
from pathlib import Path

from pipeline.errors import InputFormatError, Problem

MAX_BYTES = 512 * 1024 * 1024


def read_text(path: Path) -> tuple[str, list[Problem]]:
    """Read a text file, returning its text and any encoding warnings.

    UTF-8 (with or without BOM) and UTF-16 (with BOM, or BOM-less with the tell-tale NUL
    pattern) are decoded silently; undecodable UTF-8 falls back to cp1252 with a warning.
    Empty and binary files raise :class:`InputFormatError`.
    """
    data = read_bytes(path)
    return decode_bytes(data, str(path))


def read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputFormatError(
                "file too large", path=path, expected=f"at most {MAX_BYTES // 2**20} MiB",
                found=f"{size // 2**20} MiB", fix="split the transcript file",
            )
        return path.read_bytes()
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


def decode_bytes(data: bytes, where: str) -> tuple[str, list[Problem]]:
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
