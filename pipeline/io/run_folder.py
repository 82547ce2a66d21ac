"""Reading a run folder back: its coded turns as :class:`~pipeline.records.TurnRecord` and its
per-session rows.

Review export, review import, agreement, corrections and review rounds read a run through
:class:`RunFolder`, never by parsing ``turns.jsonl`` themselves. A bad line is an
:class:`~pipeline.errors.InputFormatError` naming the file, the line and the field (never its
value: the text fields are transcript text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pipeline.errors import ConfigError, InputFormatError
from pipeline.records import TurnRecord

TURNS = "turns.jsonl"
SESSIONS = "sessions.jsonl"


@dataclass(frozen=True)
class SessionSource:
    """Where a coded session came from (a row of ``sessions.jsonl``)."""

    source_file: str = ""
    format: str = ""


class RunFolder:
    """A folder written by ``rupture-coder code`` (``--out``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / TURNS).is_file():
            raise ConfigError(f"run folder has no {TURNS}", path=str(path),
                              fix="point at the --out folder of `rupture-coder code`")

    @property
    def turns_path(self) -> Path:
        return self.path / TURNS

    def iter_turns(self) -> Iterator[TurnRecord]:
        """The coded turns in file order (sessions in input order, turns in session order)."""
        with open(self.turns_path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except ValueError as err:
                    raise InputFormatError("not a JSON line", path=self.turns_path, line=line_no,
                                           found=err.msg) from None
                try:
                    yield TurnRecord.from_dict(raw)
                except ValueError as err:
                    raise InputFormatError("not a turn record", path=self.turns_path, line=line_no,
                                           found=str(err), expected="fields of pipeline.records.TurnRecord",
                                           fix=f"use {TURNS} as `rupture-coder code` wrote it") from None

    def turns(self) -> list[TurnRecord]:
        return list(self.iter_turns())

    def session_rows(self) -> list[dict]:
        """The rows of ``sessions.jsonl`` in file order (empty when the file is missing; lines that
        are not a JSON object with a ``session_id`` are skipped)."""
        path = self.path / SESSIONS
        if not path.is_file():
            return []
        out = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and "session_id" in row:
                    out.append(row)
        return out

    def session_sources(self) -> dict[str, SessionSource]:
        """Source file and reader format per session id (from :meth:`session_rows`)."""
        return {str(r["session_id"]): SessionSource(str(r.get("source_file") or ""), str(r.get("format") or ""))
                for r in self.session_rows()}
