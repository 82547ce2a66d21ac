"""The sessions manifest: which sessions belong to which case (client) and therapist, in which order.

A CSV with a header row and the columns ``session_id`` (as in the run's ``sessions.jsonl``),
``case_id`` (or ``client_id``), optionally ``therapist_id``, and ``session_number`` (1, 2, ...)
or ``date`` (``YYYY-MM-DD``) to order a case's sessions (both may be given: the number orders,
the date is shown). Errors name the file, the line and the column and say what was expected;
they never quote a cell.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputFormatError

MAX_ROWS = 1_000_000
MAX_ID = 200  # characters of an id


@dataclass(frozen=True)
class ManifestRow:
    session_id: str
    case_id: str
    therapist_id: str
    number: int | None
    date: str | None  # ISO date
    line: int

    @property
    def order(self) -> tuple:
        return (self.number if self.number is not None else 10**9, self.date or "", self.session_id)


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read and validate a sessions manifest (see the module docstring)."""
    path = Path(path)
    where = str(path)

    def bad(message: str, line: int, **kw) -> InputFormatError:
        return InputFormatError(message, path=where, line=line, **kw)

    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as err:
        raise InputFormatError("cannot read the sessions manifest", path=where, found=err.strerror) from None
    rows, seen = [], {}
    with handle:
        try:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            case_col = "case_id" if "case_id" in header else ("client_id" if "client_id" in header else None)
            missing = [c for c, ok in (("session_id", "session_id" in header), ("case_id or client_id", case_col),
                                       ("session_number or date", "session_number" in header or "date" in header))
                       if not ok]
            if missing:
                raise bad("sessions manifest lacks columns", 1, found=", ".join(missing),
                          expected="session_id, case_id (or client_id), therapist_id (optional), session_number or date",
                          fix="add the columns to the header row")
            for row in reader:
                line = reader.line_num
                if len(rows) >= MAX_ROWS:
                    raise bad("sessions manifest too long", line, expected=f"at most {MAX_ROWS} rows")
                sid = (row.get("session_id") or "").strip()
                case = (row.get(case_col) or "").strip()
                if not sid and not case and not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue  # a blank line
                for name, value in (("session_id", sid), (case_col, case)):
                    if not value:
                        raise bad(f"column {name} is empty", line, fix="give every row a session and a case")
                    if len(value) > MAX_ID:
                        raise bad(f"column {name} is too long", line, found=f"{len(value)} characters",
                                  expected=f"at most {MAX_ID}")
                number = _number(row.get("session_number"), line, bad)
                date = _date(row.get("date"), line, bad)
                if number is None and date is None:
                    raise bad("neither session_number nor date is given", line,
                              fix="give the session's number in the case (1, 2, ...) or its date (YYYY-MM-DD)")
                if sid in seen:
                    raise bad("session listed twice", line, found=f"also on line {seen[sid]}",
                              fix="keep one row per session")
                seen[sid] = line
                rows.append(ManifestRow(sid, case, (row.get("therapist_id") or "").strip()[:MAX_ID], number, date, line))
        except csv.Error as err:
            raise bad("sessions manifest is not valid CSV", getattr(err, "line_num", None) or 0,
                      found=type(err).__name__) from None
        except UnicodeDecodeError:
            raise InputFormatError("sessions manifest is not UTF-8", path=where, fix='save it as "CSV UTF-8"') from None
    return rows


def _number(raw, line, bad) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 100_000:
        raise bad("column session_number is not a session number", line, expected="a whole number from 1")
    return int(raw)


def _date(raw, line, bad) -> str | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw).isoformat()
    except ValueError:
        raise bad("column date is not a date", line, expected="YYYY-MM-DD, e.g. 2026-03-14") from None
