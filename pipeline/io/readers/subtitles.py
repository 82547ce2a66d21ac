"""WebVTT and SRT subtitle files from transcription services.

Each cue is a turn fragment with start/end times; the speaker comes from a WebVTT voice tag
(``<v Dr Lee>``) or a "Name:" prefix in the cue text. Consecutive cues of one speaker are
merged later by segmentation.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pysrt
import webvtt

from pipeline.errors import InputFormatError, Problem
from ._build import RawRow, ReadOptions, build_sessions
from .text import match_prefix

VOICE = re.compile(r"<v(?:\.[\w.-]+)?\s+([^>]+)>")
TAG = re.compile(r"</?[^>]+>")
_CLOCK = r"(?:\d+:)?\d{1,2}:\d{1,2}[.,]\d{1,3}"
TIMING = re.compile(rf"^\s*{_CLOCK}\s*-->\s*{_CLOCK}")


def _speaker_and_text(raw: str, previous: str | None) -> tuple[str | None, str]:
    voice = VOICE.search(raw)
    text = TAG.sub("", raw).strip()
    if voice:
        return voice.group(1).strip(), text
    m = match_prefix(text.split("\n", 1)[0])
    if m:
        rest = text.split("\n", 1)[1:]
        return m[0], "\n".join([m[1], *rest]).strip()
    return previous, text


def read_vtt(path: Path, text: str, fmt: str, options: ReadOptions):
    where = str(path)
    try:
        captions = webvtt.from_buffer(io.StringIO(text)).captions
    except Exception as err:  # webvtt raises several exception types for malformed files
        raise InputFormatError("malformed WebVTT file", path=where, found=type(err).__name__,
                               expected="a WEBVTT header and cues 'hh:mm:ss.mmm --> hh:mm:ss.mmm'",
                               fix="check the file, or export it again") from None
    # start_in_seconds is truncated to whole seconds: use the milliseconds
    cues = [(c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, c.raw_text)
            for c in captions]
    skipped = _skipped_cues(text, len(cues), where)
    sessions, problems = _build(path, cues, _cue_lines(text), fmt, options)
    return sessions, skipped + problems


def read_srt(path: Path, text: str, fmt: str, options: ReadOptions):
    where = str(path)
    try:
        subs = pysrt.from_string(text, error_handling=pysrt.ERROR_RAISE)
    except Exception as err:  # pysrt.Error and parse errors
        raise InputFormatError("malformed SRT file", path=where, found=type(err).__name__,
                               expected="numbered cues with 'hh:mm:ss,mmm --> hh:mm:ss,mmm' lines",
                               fix="check the file, or export it again") from None
    cue_lines = _cue_lines(text)
    cues = [(s.start.ordinal / 1000, s.end.ordinal / 1000, s.text) for s in subs]
    return _build(path, cues, cue_lines, fmt, options)


def _cue_lines(text: str) -> list[int]:
    """Line number of each cue's (well-formed) timing line, in order."""
    return [i for i, line in enumerate(text.splitlines(), start=1) if TIMING.match(line)]


def _skipped_cues(text: str, n_cues: int, where: str) -> list[Problem]:
    """webvtt-py silently drops cues whose timing line it cannot read: report them."""
    arrows = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if "-->" in line]
    if len(arrows) <= n_cues:
        return []
    first_bad = next((i for i, line in arrows if not TIMING.match(line)), arrows[0][0])
    return [Problem("warning", "subtitles.skipped_cues",
                    f"{len(arrows) - n_cues} cue(s) with unreadable timing lines skipped", where, first_bad)]


def _build(path: Path, cues, cue_lines, fmt, options):
    where = str(path)
    rows, problems, speaker = [], [], None
    unknown = 0
    for k, (start, end, raw) in enumerate(cues):
        line = cue_lines[k] if k < len(cue_lines) else 0
        speaker, body = _speaker_and_text(raw, speaker)
        if speaker is None:
            unknown += 1
            continue
        rows.append(RawRow(path.stem, speaker, body, line, turn_id=str(k + 1), start=start, end=end))
    if unknown:
        problems.append(Problem("warning", "subtitles.no_speaker",
                                f"{unknown} cue(s) before any speaker was named were skipped",
                                where, cue_lines[0] if cue_lines else None))
    if not rows:
        raise InputFormatError("no speaker-labelled cues", path=where,
                               expected="cues with <v Name> voice tags or 'Name:' prefixes",
                               fix="add speaker names in the transcription service's export settings")
    sessions, more = build_sessions(rows, where, fmt, options)
    return sessions, problems + more
