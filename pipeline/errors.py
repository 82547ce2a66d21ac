"""The error and warning catalogue of rupture-coder.

Every error a user can cause subclasses :class:`RuptureCoderError` (itself a ``ValueError``)
and says where (file and line, or session and turn), what was expected, what was found and how
to fix it. Messages never contain transcript text: ``found`` describes the problem, it does not
quote the turn.

Recoverable data problems are :class:`Problem` records with level ``warning``; they are counted
in run summaries instead of being raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class RuptureCoderError(ValueError):
    """Base class of every error caused by user input or configuration."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        session_id: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.session_id = session_id
        self.expected = expected
        self.found = found
        self.fix = fix
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = _where(self.path, self.line, self.session_id)
        parts = [f"{where}: {self.message}" if where else self.message]
        if self.expected:
            parts.append(f"expected {self.expected}")
        if self.found:
            parts.append(f"found {self.found}")
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return "; ".join(parts)


class InputFormatError(RuptureCoderError):
    """A transcript file cannot be read or parsed."""


class SpeakerMappingError(InputFormatError):
    """Speaker labels that cannot be mapped to therapist/client/other."""


class ConfigError(RuptureCoderError):
    """Invalid configuration or command-line option."""


class CodebookError(RuptureCoderError):
    """A label file is invalid, or a code is not in the label scheme."""


class LabelError(RuptureCoderError):
    """Training or review labels that do not fit the data or the scheme."""


class ModelError(RuptureCoderError):
    """A model bundle is missing, incomplete or incompatible."""


def _where(path: str | None, line: int | None, session_id: str | None) -> str:
    out = path or ""
    if line is not None:
        out = f"{out}:{line}" if out else f"line {line}"
    if session_id is not None:
        out = f"{out} (session {session_id})" if out else f"session {session_id}"
    return out


@dataclass(frozen=True)
class Problem:
    """A recoverable data problem (``warning``) or a file/session that failed (``error``)."""

    level: str  # "warning" | "error"
    code: str  # stable identifier, e.g. "encoding.cp1252", "turns.non_monotonic_time"
    message: str
    path: str | None = None
    line: int | None = None
    session_id: str | None = None

    def render(self) -> str:
        where = _where(self.path, self.line, self.session_id)
        return f"{where}: {self.message}" if where else self.message

    @classmethod
    def from_error(cls, err: RuptureCoderError, code: str = "input.error") -> "Problem":
        return cls("error", code, str(err), None, None, None)
