"""Plain-text transcripts with speaker prefixes ("T:", "Client 1:", "Counsellor:", "T12 ...").

A line that starts with a speaker label starts a turn; other lines continue the current turn;
blank lines are ignored. A label counts as a speaker when the label file knows it, when
``--roles`` names it, or when it starts at least three lines (then an unknown label is an error
naming it). Lines before the first turn (titles, headers) are skipped with a counted warning.
Turn numbers in labels ("T12", "C13") are not part of the speaker id; "Client 2" and "P2" are.
Zero-width characters (U+200B, U+200C, U+200D, U+2060, U+FEFF) in a label are ignored.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

from pipeline.errors import Problem
from ._build import RawRow, ReadOptions, build_sessions
from .decode import ZERO_WIDTH, ZERO_WIDTH_RE
from .roles import RoleMapper

# "Therapist: ...", "Client 1: ...", "T12: ...", "Dr. Lee: ..."
COLON_PREFIX = re.compile(r"^\s*(?P<label>[A-Za-z][A-Za-z .'’-]{0,28}?\s?\d{0,4})\s*(?:\(continued\))?\s*:\s*(?P<text>.*)$")
# "T12 text", "C 13 text" (numbered codes without a colon)
NUMBERED_PREFIX = re.compile(r"^\s*(?P<label>[A-Z]{1,2}\s?\d{1,4})\s+(?P<text>\S.*)$")
NUMBERED_CODE = re.compile(r"^(?P<code>[A-Za-z]{1,2})\s?(?P<number>\d{1,4})$")
MIN_UNKNOWN_LABEL_LINES = 3


def match_prefix(line: str) -> tuple[str, str] | None:
    m = COLON_PREFIX.match(line) or NUMBERED_PREFIX.match(line)
    if m:
        return m.group("label").strip(), m.group("text")
    if not ZERO_WIDTH_RE.search(line, 0, 64):
        return None
    # "\u200bT: ..." or "T\u2060: ...": match without the zero-width characters, and take the
    # text from the original line (the turn's text keeps its own characters)
    clean = ZERO_WIDTH_RE.sub("", line)
    m = COLON_PREFIX.match(clean) or NUMBERED_PREFIX.match(clean)
    if not m:
        return None
    wanted, i = m.start("text"), 0
    for _ in range(wanted):  # skip as many visible characters in the original line
        while line[i] in ZERO_WIDTH:
            i += 1
        i += 1
    return m.group("label").strip(), line[i:].lstrip(ZERO_WIDTH)


def speaker_labels(lines: list[str], mapper: RoleMapper) -> set[str]:
    """Labels that should be treated as speakers in this file."""
    counts = Counter(m[0] for m in map(match_prefix, lines) if m)
    return {
        label for label, n in counts.items()
        if mapper.is_known(label) or n >= MIN_UNKNOWN_LABEL_LINES
    }


def parse_lines(
    lines: list[tuple[int, str]], session_id: str, speakers: set[str]
) -> tuple[list[RawRow], int]:
    """Turn (line number, line) pairs into rows; returns rows and the count of skipped lines
    before the first turn."""
    rows: list[RawRow] = []
    skipped = 0
    for line_no, line in lines:
        if not line.strip():
            continue
        m = match_prefix(line)
        if m and m[0] in speakers:
            label, text = m
            rows.append(RawRow(session_id, label, text.strip(), line_no, turn_id=str(line_no)))
        elif rows:
            rows[-1].text = f"{rows[-1].text}\n{line.strip()}" if rows[-1].text else line.strip()
        else:
            skipped += 1
    _strip_turn_numbers(rows)
    return rows, skipped


def _strip_turn_numbers(rows: list[RawRow]) -> None:
    """'T12', 'C13', 'T14': numbers that count turns are not part of the speaker id (which
    becomes 'T'), while 'P1'/'P2' of a couple are. A short code's numbers count turns when they
    never decrease through the file, take two or more values and none repeats more than twice."""
    numbers: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        m = NUMBERED_CODE.match(row.speaker)
        if m:
            numbers[m["code"]].append(int(m["number"]))
    counted = {
        code for code, seq in numbers.items()
        if seq == sorted(seq) and len(set(seq)) > 1 and max(Counter(seq).values()) <= 2
    }
    for row in rows:
        m = NUMBERED_CODE.match(row.speaker)
        if m and m["code"] in counted:
            row.speaker_id = m["code"]


def read_plain_text(path: Path, text: str, fmt: str, options: ReadOptions):
    where = str(path)
    lines = text.splitlines()
    mapper = RoleMapper(dict(options.roles))
    speakers = speaker_labels(lines, mapper)
    rows, skipped = parse_lines(list(enumerate(lines, start=1)), path.stem, speakers)
    problems = []
    if skipped:
        problems.append(Problem("warning", "text.preamble_skipped",
                                f"{skipped} line(s) before the first speaker turn skipped", where, 1))
    sessions, more = build_sessions(rows, where, fmt, options)
    return sessions, problems + more
