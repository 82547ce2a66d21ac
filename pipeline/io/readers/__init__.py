"""Readers for real-world transcript formats, with format auto-detection.

``read_file`` reads one file; ``load_paths`` reads many (directories recursively), reporting a
bad file as a Problem and going on with the rest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import InputFormatError, Problem, RuptureCoderError
from pipeline.records import Corpus, Session
from ._build import ReadOptions, parse_time, problem_from_error
from .decode import decode_bytes, file_kind, read_bytes
from .docx import read_docx
from .rogers import looks_like_rogers, read_rogers
from .subtitles import read_srt, read_vtt
from .tabular import detect_profile, read_delimited, read_jsonl
from .text import read_plain_text

log = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "jsonl", "text", "vtt", "srt", "docx", "annomi", "hlqc", "hope", "rogers")
EXTENSIONS = {".csv", ".tsv", ".jsonl", ".ndjson", ".txt", ".text", ".vtt", ".srt", ".docx"}
_TEXT_READERS = {
    "csv": read_delimited, "tsv": read_delimited, "annomi": read_delimited, "hlqc": read_delimited,
    "hope": read_delimited, "jsonl": read_jsonl, "text": read_plain_text, "rogers": read_rogers,
    "vtt": read_vtt, "srt": read_srt,
}


@dataclass
class FileResult:
    path: str
    format: str | None
    sessions: list[Session] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return not self.sessions and any(p.level == "error" for p in self.problems)


def detect_format(path: Path, text: str | None) -> str:
    """Guess the format from the extension and the content."""
    ext = path.suffix.lower()
    if ext == ".docx":
        return "docx"
    head = (text or "")[:4000]
    stripped = head.lstrip("\ufeff").lstrip()
    if ext == ".vtt" or stripped.startswith("WEBVTT"):
        return "vtt"
    if ext == ".srt" or _looks_like_srt(stripped):
        return "srt"
    if ext in {".jsonl", ".ndjson"} or (stripped.startswith("{") and ext not in {".csv", ".tsv"}):
        return "jsonl"
    if ext in {".csv", ".tsv"}:
        header = stripped.split("\n", 1)[0]
        delim = "\t" if ext == ".tsv" or header.count("\t") > header.count(",") else ","
        profile = detect_profile([h.strip().strip('"') for h in header.split(delim)])
        return profile or ("tsv" if delim == "\t" else "csv")
    if looks_like_rogers(text or ""):
        return "rogers"
    return "text"


def _looks_like_srt(head: str) -> bool:
    lines = head.splitlines()
    return len(lines) > 1 and lines[0].strip().isdigit() and "-->" in lines[1]


def read_file(path: str | Path, options: ReadOptions | None = None) -> FileResult:
    """Read one transcript file. Errors in the whole file raise InputFormatError; errors in
    one session of a multi-session file are returned as error Problems."""
    options = options or ReadOptions()
    path = Path(path)
    data = read_bytes(path)
    if options.fmt == "docx" or (options.fmt is None and path.suffix.lower() == ".docx"):
        if not data:
            raise InputFormatError("file is empty", path=path)
        sessions, problems = read_docx(path, data, "docx", options)
        return FileResult(str(path), "docx", sessions, problems)
    text, problems = decode_bytes(data, str(path))
    fmt = options.fmt or detect_format(path, text)
    if fmt not in _TEXT_READERS:
        raise InputFormatError(f"unknown format {fmt!r}", path=path,
                               expected=f"one of {', '.join(FORMATS)}", fix="check --format")
    sessions, more = _TEXT_READERS[fmt](path, text, fmt, options)
    return FileResult(str(path), fmt, sessions, problems + more)


def expand_paths(paths: list[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Files named directly, plus supported files found under named directories (sorted,
    symlink loops and unreadable directories reported, never followed forever)."""
    files, problems, seen = [], [], set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for child in sorted(_walk(p, problems, set())):
                if child.suffix.lower() in EXTENSIONS and child not in seen:
                    seen.add(child)
                    files.append(child)
        elif p.exists() or p.is_symlink():
            if p not in seen:
                seen.add(p)
                files.append(p)
        else:
            problems.append(Problem("error", "input.missing", "no such file or directory", str(p)))
    return files, problems


def _walk(directory: Path, problems: list[Problem], visited: set) -> list[Path]:
    try:
        real = directory.resolve(strict=True)
    except (OSError, RuntimeError):
        problems.append(Problem("warning", "input.unresolvable", "cannot resolve directory (symlink loop?)", str(directory)))
        return []
    if real in visited:
        problems.append(Problem("warning", "input.symlink_loop", "directory visited twice (symlink loop); skipped", str(directory)))
        return []
    visited.add(real)
    out = []
    try:
        entries = sorted(directory.iterdir())
    except OSError as err:
        problems.append(Problem("error", "input.unreadable_dir", f"cannot list directory ({err.strerror})", str(directory)))
        return []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            out.extend(_walk(entry, problems, visited))
        elif entry.is_file():
            out.append(entry)
        elif not entry.exists():
            if entry.is_symlink():
                problems.append(Problem("warning", "input.broken_link",
                                        "broken symbolic link (or a link loop); skipped", str(entry)))
        elif entry.suffix.lower() in EXTENSIONS:  # a named pipe, a device, a socket: never opened
            problems.append(Problem(
                "warning", "input.not_regular",
                f"not a regular file ({_kind(entry)}); skipped; expected a transcript file; "
                "fix: copy the transcript into an ordinary file", str(entry)))
    return out


def _kind(path: Path) -> str:
    try:
        return file_kind(os.stat(path).st_mode)
    except OSError:
        return "unreadable"


def require_inputs(paths: list[str | Path]) -> None:
    """Refuse inputs that hold no transcript file at all (an empty folder, a mistyped path),
    which would otherwise make an empty run that succeeds. Inputs holding at least one file are
    accepted; a missing path among them is reported by the run as a failed file."""
    files, problems = expand_paths(paths)
    if files:
        return
    missing = {p.path for p in problems if p.code == "input.missing"}
    looked_for = f"files ending in {', '.join(sorted(EXTENSIONS))}"
    reasons = [f"{raw}: {'no such file or directory' if str(Path(raw)) in missing else 'no transcript files in it'}"
               for raw in paths]
    if len(paths) == 1:
        if missing:
            raise InputFormatError("no such file or directory", path=paths[0],
                                   expected="a transcript file or a folder of them",
                                   fix="check the path (a typing mistake?)")
        raise InputFormatError("no transcript files found under this folder", path=paths[0],
                               expected=looked_for, found="none (hidden files and other extensions are skipped)",
                               fix="check the folder, or name the files with one of these extensions")
    raise InputFormatError(f"no transcript files found in the {len(paths)} inputs",
                           expected=f"transcript files or folders holding {looked_for}",
                           found="; ".join(reasons), fix="check the paths")


def load_paths(paths: list[str | Path], options: ReadOptions | None = None) -> list[FileResult]:
    """Read many files; one bad file is reported in its FileResult and the rest still load."""
    files, problems = expand_paths(paths)
    results = [FileResult(p.path or "", None, [], [p]) for p in problems]
    for path in files:
        try:
            results.append(read_file(path, options))
        except RuptureCoderError as err:
            log.warning("could not read %s: %s", path, type(err).__name__)
            results.append(FileResult(str(path), None, [], [problem_from_error(err, "input.error", str(path))]))
    return results


def load_corpus(paths: list[str | Path], options: ReadOptions | None = None) -> tuple[Corpus, list[Problem]]:
    results = load_paths(paths, options)
    sessions = [s for r in results for s in r.sessions]
    problems = [p for r in results for p in r.problems]
    return Corpus(tuple(sessions)), problems


__all__ = ["FORMATS", "FileResult", "ReadOptions", "detect_format", "load_corpus", "load_paths",
           "read_file", "parse_time", "require_inputs"]
