"""Label tables keyed by (dataset, session id, input turn id), and attaching them to sessions.

The team's codes for the real transcripts in ../shared/data live in ``corpus/real_labels/`` as
such tables: they hold codes only, never transcript text. ``dataset`` is the reader format that
produced the session (``annomi``, ``hlqc``, ``hope``, ``rogers``, ...), ``turn_id`` the input
turn id the reader records in ``Turn.source.turn_ids``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.codebook import load_codebook
from pipeline.errors import LabelError
from pipeline.records import Annotation, Session

COLUMNS = ("dataset", "session_id", "turn_id", "speaker", "rupture", "markers", "repair", "strategies")


@dataclass(frozen=True)
class TurnLabel:
    dataset: str
    session_id: str
    turn_id: str
    speaker: str
    codes: dict  # layer -> tuple of codes

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.session_id, self.turn_id)


def read_label_table(path: str | Path) -> dict[tuple[str, str, str], TurnLabel]:
    """Read and validate a label table; every code is checked against the label file."""
    path = Path(path)
    book = load_codebook()
    out: dict[tuple[str, str, str], TurnLabel] = {}
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as err:
        raise LabelError("cannot read label table", path=path, found=err.strerror) from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise LabelError("label table lacks columns", path=path, line=1, found=", ".join(missing),
                             expected=", ".join(COLUMNS))
        for row in reader:
            line = reader.line_num
            codes = {}
            for layer in ("rupture", "markers", "repair", "strategies"):
                raw = [c for c in (row[layer] or "").split(";") if c.strip()]
                try:
                    codes[layer] = tuple(book.validate(layer, raw))
                except LabelError:
                    raise
                except Exception as err:  # CodebookError: re-raise with file and line
                    raise LabelError(getattr(err, "message", str(err)), path=path, line=line,
                                     expected=getattr(err, "expected", None)) from None
            label = TurnLabel(row["dataset"], row["session_id"], str(row["turn_id"]), row["speaker"], codes)
            if label.key in out:
                raise LabelError("duplicate label row", path=path, line=line,
                                 found=f"{label.key} twice", fix="keep one row per turn")
            out[label.key] = label
    return out


def attach_labels(session: Session, table: dict, coder: str) -> tuple[Session, int]:
    """Add the table's codes for this session's turns as annotations with source
    ``human:<coder>``; returns the new session and the number of turns labelled. A merged turn
    takes the first non-``none`` single code and the union of multi codes of its input turns; a
    turn flagged ``merged_speakers`` (a row holding both speakers' talk) gets none."""
    dataset = session.source_format
    new: list[Annotation] = []
    labelled = 0
    for turn in session.turns:
        if turn.meta.get("merged_speakers"):  # both speakers in one row: no gold codes
            continue
        labels = [table.get((dataset, session.session_id, tid)) for tid in turn.source.turn_ids]
        labels = [lab for lab in labels if lab is not None]
        if not labels:
            continue
        labelled += 1
        layers = ("rupture", "markers") if turn.speaker_role == "client" else (
            ("repair", "strategies") if turn.speaker_role == "therapist" else ())
        for layer in layers:
            codes = [c for lab in labels for c in lab.codes.get(layer, ())]
            if layer in ("rupture", "repair"):
                chosen = next((c for c in codes if c != "none"), "none")
                new.append(Annotation(session.session_id, turn.index, layer, chosen, 1.0, f"human:{coder}"))
            else:
                new.extend(Annotation(session.session_id, turn.index, layer, c, 1.0, f"human:{coder}")
                           for c in dict.fromkeys(codes))
    return replace(session, annotations=session.annotations + tuple(new)), labelled
