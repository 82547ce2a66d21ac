"""The Carl Rogers transcripts (Brodley & Lietaer, vol. 12) as extracted from PDF.

Structure handled: each session starts at a legend line naming the therapist and client codes
("the responses of the therapist (C) ... and the client (S)"), followed by a title; turns start
with the code, usually numbered ("S 2:", "C13:", "T146 ..."), or a first name ("Carl:");
page footers, footnotes, bracketed commentary ("[Carl: ...]", "C Commentary 3: [...]"),
post-session commentary ("END OF SESSION", "END", "Post-Session Commentary", "FINAL COMMENT")
and the licence notice between transcripts are not part of any session. Input turn ids are the
line numbers where turns start; a speaker's id is the session's code ("Carl:" is "C").
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import InputFormatError
from ._build import RawRow, ReadOptions, build_sessions
from .text import match_prefix

LEGEND = re.compile(r"therapist\s*\((?P<t>[A-Z])\).*?client\s*\((?P<c>[A-Z])\)", re.S)
FOOTER = re.compile(r"^Rogers[’'] Transcripts, Volume")
# Where a session's dialogue ends: end markers, post-session commentary, and the licence notice
# that opens the next transcript (sessions without an end marker run up to it).
SESSION_END = re.compile(r"^(END OF SESSION|END\s*$|.*Post-Session Commentary\s*$|FINAL COMMENT|"
                         r"This transcript is available for purposes)")
COMMENTARY = re.compile(r"^\s*(\[|[A-Z][a-z]*\s+Commentary\s*\d*\s*:)")
FOOTNOTE = re.compile(r"^\d{1,2} [A-Z]")
NAME = re.compile(r"(?:with|Code name-)\s*([A-Z][a-z]+)")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}
ORDINAL = re.compile(r"\b(?:(\d+)(?:st|nd|rd|th)?\s+(?:Interview|Session)|Session\s+(\d+)|"
                     r"(First|Second|Third|Fourth|Fifth)\s+(?:Interview|Session))", re.I)


def looks_like_rogers(text: str) -> bool:
    head = text[:5000]
    return "Rogers" in head and bool(LEGEND.search(head))


def read_rogers(path: Path, text: str, fmt: str, options: ReadOptions):
    where = str(path)
    lines = text.splitlines()
    blocks = _session_blocks(lines)
    if not blocks:
        raise InputFormatError("no sessions found", path=where,
                               expected="legend lines naming the therapist (X) and client (Y) codes",
                               fix="use --format text for ordinary speaker-prefixed text")
    rows: list[RawRow] = []
    for session_id, t_code, c_code, names, body in blocks:
        speakers = {t_code: "therapist", c_code: "client", **names}
        codes = {"therapist": t_code, "client": c_code}
        # Codes mean different roles in different sessions (C = Carl or client): roles are set
        # per session; "Carl:" and "C 1:" are one speaker, whose id is the session's code.
        for row in _turns(session_id, body, speakers):
            row.role = speakers[row.speaker]
            row.speaker_id = codes[row.role]
            rows.append(row)
    sessions, problems = build_sessions(rows, where, fmt, options)
    return sessions, problems


def _session_blocks(lines):
    blocks, i, n = [], 0, len(lines)
    while i < n:
        window = " ".join(lines[i:i + 2])
        m = LEGEND.search(window) if "therapist" in lines[i] else None
        if not m:
            i += 1
            continue
        start = i + 2 if LEGEND.search(lines[i]) is None else i + 1
        end = start
        while end < n and not SESSION_END.match(lines[end]) and not (
            "therapist" in lines[end] and LEGEND.search(" ".join(lines[end:end + 2]))
        ):
            end += 1
        title = _title(lines[start:start + 8])
        session_id, client_name = _session_id(title, [b[0] for b in blocks])
        names = {"Carl": "therapist", "Rogers": "therapist"}
        if client_name:
            names[client_name] = "client"
        blocks.append((session_id, m["t"], m["c"], names,
                       [(k + 1, lines[k]) for k in range(start, end)]))
        i = end
    return blocks


def _title(head: list[str]) -> str:
    """The title line (the first naming the client) and the line after it."""
    for k, line in enumerate(head):
        if NAME.search(line) and not line.lstrip().startswith("["):
            return " ".join(head[k:k + 2])
    return " ".join(head[:2])


def _session_id(title: str, taken: list[str]) -> tuple[str, str | None]:
    name = NAME.search(title)
    client = name.group(1) if name else None
    base = (client or "session").lower()
    m = ORDINAL.search(title)
    if m:
        number = m.group(1) or m.group(2) or ORDINALS[m.group(3).lower()]
        base = f"{base}_{number}"
    session_id, k = base, 2
    while session_id in taken:
        session_id, k = f"{base}_{k}", k + 1
    return session_id, client


def _turns(session_id, body, speakers):
    rows: list[RawRow] = []
    depth = 0
    skip_footnote = False
    for line_no, line in body:
        stripped = line.strip()
        if FOOTER.match(stripped):
            skip_footnote = False
            continue
        if depth == 0 and COMMENTARY.match(stripped):
            depth = max(1, stripped.count("[") - stripped.count("]")) if "[" in stripped else 1
            if stripped.count("[") and stripped.count("[") <= stripped.count("]"):
                depth = 0
            continue
        if depth > 0:
            depth += stripped.count("[") - stripped.count("]")
            depth = max(depth, 0)
            continue
        if skip_footnote or (FOOTNOTE.match(stripped) and rows):
            skip_footnote = True
            continue
        m = match_prefix(stripped)
        label = _label(m[0]) if m else None
        if m and label in speakers:
            rows.append(RawRow(session_id, label, m[1].strip(), line_no, turn_id=str(line_no)))
        elif rows and stripped:
            rows[-1].text = f"{rows[-1].text}\n{stripped}"
    return rows


def _label(raw: str) -> str:
    """'S 2' -> 'S', 'C13' -> 'C', 'Sylvia1' -> 'Sylvia', 'Carl' -> 'Carl'."""
    return re.sub(r"\s*\d+$", "", raw).strip()
