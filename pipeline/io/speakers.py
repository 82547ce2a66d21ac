"""Speaker corrections: who actually speaks, where a transcript's speaker label is wrong.

Machine-transcribed corpora (HLQC above all) carry stretches of swapped speaker labels and rows
that hold both speakers' talk. A correction table fixes them without editing the raw data: one row
per input turn, keyed by ``dataset`` (the reader format, e.g. ``hlqc``), ``session_id`` and
``turn_id`` (the input turn id a reader records in ``Turn.source.turn_ids``), with

- ``kind = swap``: the turn is spoken by ``speaker_true`` (``client`` or ``therapist``);
- ``kind = merged``: the row holds both speakers' talk; it keeps its label, is flagged
  (``Turn.meta["merged_speakers"]``) and is kept out of training.

The tables hold no transcript text (``note`` is a short reason in the coder's words). Readers
apply a table on request (:class:`pipeline.io.readers.ReadOptions` ``speaker_corrections``; the
CLI's ``--speaker-corrections``); training on the team's real labels always applies
``corpus/speaker_corrections/speakers.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from pipeline.errors import LabelError

COLUMNS = ("dataset", "session_id", "turn_id", "speaker_source", "speaker_true", "kind", "note")
KINDS = ("swap", "merged")
ROLES = ("client", "therapist")


@dataclass(frozen=True)
class SpeakerCorrection:
    speaker_source: str
    speaker_true: str  # client | therapist, or "merged"
    kind: str


SpeakerTable = Mapping[tuple[str, str, str], SpeakerCorrection]


def read_speaker_corrections(paths: Iterable[str | Path]) -> dict[tuple[str, str, str], SpeakerCorrection]:
    """Read and validate correction tables; a key may appear once across all of them."""
    out: dict[tuple[str, str, str], SpeakerCorrection] = {}
    for path in map(Path, paths):
        try:
            handle = open(path, newline="", encoding="utf-8-sig")
        except OSError as err:
            raise LabelError("cannot read speaker corrections", path=path, found=err.strerror,
                             fix="check the path given to --speaker-corrections") from None
        with handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS[:-1] if c not in (reader.fieldnames or [])]
            if missing:
                raise LabelError("speaker corrections lack columns", path=path, line=1,
                                 found=", ".join(missing), expected=", ".join(COLUMNS))
            for row in reader:
                key, fix = (row["dataset"], row["session_id"], str(row["turn_id"])), _check(row)
                if fix:
                    raise LabelError("bad speaker correction", path=path, line=reader.line_num,
                                     expected=fix, fix="correct the row or remove it")
                if key in out:
                    raise LabelError("turn corrected twice", path=path, line=reader.line_num,
                                     found=f"dataset {key[0]}, session {key[1]}, turn {key[2]}",
                                     fix="keep one row per turn")
                out[key] = SpeakerCorrection(row["speaker_source"], row["speaker_true"], row["kind"])
    return out


def _check(row: dict) -> str | None:
    if row["kind"] not in KINDS:
        return f"kind one of {', '.join(KINDS)}"
    if row["kind"] == "swap" and row["speaker_true"] not in ROLES:
        return f"speaker_true one of {', '.join(ROLES)} for a swap"
    if row["kind"] == "merged" and row["speaker_true"] != "merged":
        return "speaker_true 'merged' for a merged row"
    if not row["dataset"] or not row["session_id"] or not str(row["turn_id"]).strip():
        return "dataset, session_id and turn_id filled"
    return None
