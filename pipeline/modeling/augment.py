"""Target-style augmentation: counterfactual variants of real labelled sessions.

A variant is a copy of one real session in which one to three input rows are rewritten (a client
turn into a rupture, the therapist turn after it into a repair attempt, or a hard negative that
only looks like one), written in the source's own style. The rewrites live apart from the real
labels, in ``corpus/augmented/<version>/*.csv`` (columns :data:`COLUMNS`: the row they replace,
its new text and codes; no text of the source transcripts).

Honesty rules, enforced here and by the evaluation:

* a variant's session carries codes **only on its rewritten turns** (``human:augmented``); its
  other turns are the source session's, unlabelled, so they are not trained on twice;
* every variant names its source session (``Session.meta["augmented_from"]``): the estimator keeps
  a source and its variants in the same internal fold, and evaluation adds a variant to a
  training part only when its source session is in that part; variants are never scored;
* calibration and thresholds are fitted on real turns only (the estimator skips rows of
  augmented sessions there), so the rewrites' rupture rate does not move the operating point.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import LabelError, Problem
from pipeline.records import Annotation, Session

COLUMNS = ("dataset", "session_id", "variant", "turn_id", "speaker", "kind", "text", "rupture", "markers",
           "repair", "strategies", "note")
KINDS = ("rupture", "repair", "negative")
SOURCE = "human:augmented"
MAX_TEXT = 2000  # characters of one rewritten turn


@dataclass(frozen=True)
class Rewrite:
    dataset: str
    session_id: str
    variant: str
    turn_id: str
    speaker: str
    kind: str
    text: str
    codes: dict  # layer -> tuple of codes
    line: int


def read_rewrites(path: str | Path, book: Codebook | None = None) -> list[Rewrite]:
    """Read and validate one augmentation table (codes against the label file, codes of the
    speaker's layers only, a rupture with markers of its family, a repair with strategies)."""
    path = Path(path)
    book = book or load_codebook()
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as err:
        raise LabelError("cannot read augmentation table", path=path, found=err.strerror) from None
    out = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise LabelError("augmentation table lacks columns", path=path, line=1, found=", ".join(missing),
                             expected=", ".join(COLUMNS))
        for row in reader:
            out.append(_rewrite(row, path, reader.line_num, book))
    return out


def _rewrite(row: dict, path: Path, line: int, book: Codebook) -> Rewrite:
    def bad(message: str, **kw):
        return LabelError(message, path=path, line=line, **kw)

    speaker, kind, text = (row["speaker"] or "").strip(), (row["kind"] or "").strip(), (row["text"] or "").strip()
    if speaker not in ("client", "therapist"):
        raise bad("speaker must be client or therapist", found=f"{len(speaker)} characters")
    if kind not in KINDS:
        raise bad("unknown kind", expected=", ".join(KINDS))
    if not text or len(text) > MAX_TEXT:
        raise bad("text is empty or too long", found=f"{len(text)} characters", expected=f"1 to {MAX_TEXT}")
    layers = ("rupture", "markers") if speaker == "client" else ("repair", "strategies")
    codes = {}
    for layer in ("rupture", "markers", "repair", "strategies"):
        raw = [c for c in (row[layer] or "").split(";") if c.strip()]
        if raw and layer not in layers:
            raise bad(f"a {speaker} row has {layer} codes", fix=f"leave {layer} empty for {speaker} rows")
        try:
            codes[layer] = tuple(book.validate(layer, raw))
        except LabelError:
            raise
        except Exception as err:  # CodebookError: with file and line
            raise bad(getattr(err, "message", str(err)), expected=getattr(err, "expected", None)) from None
    single, multi = layers
    if not codes[single]:
        raise bad(f"{single} is empty", expected=" or ".join(book.layer(single).values))
    positive = codes[single][0] != "none"
    if positive != bool(codes[multi]):
        raise bad(f"{multi} must be given exactly when {single} is not none")
    if positive and single == "rupture" and not any(m.startswith(codes[single][0] + ".") for m in codes[multi]):
        raise bad("no marker of the rupture's family", found=codes[single][0])
    if kind in ("rupture", "repair") and not positive:
        raise bad(f"a {kind} rewrite must be coded {kind if kind == 'repair' else 'withdrawal or confrontation'}")
    if kind == "negative" and positive:
        raise bad("a negative rewrite must be coded none")
    return Rewrite(row["dataset"].strip(), row["session_id"].strip(), str(row["variant"]).strip(),
                   str(row["turn_id"]).strip(), speaker, kind, text, codes, line)


def augment(sessions: list[Session], paths: list[str | Path],
            book: Codebook | None = None) -> tuple[list[Session], list[Problem]]:
    """Variants of ``sessions`` (real, segmented, labelled) from augmentation tables. A rewrite
    whose row is not a turn of its source session, whose speaker differs from the turn's (after
    speaker corrections), or whose turn holds both speakers is skipped with a warning."""
    book = book or load_codebook()
    by_key = {(s.source_format, s.session_id): s for s in sessions}
    groups: dict[tuple, list[Rewrite]] = {}
    for path in paths:
        for rw in read_rewrites(path, book):
            groups.setdefault((rw.dataset, rw.session_id, rw.variant), []).append(rw)
    out, problems = [], []
    for (dataset, sid, variant), rewrites in groups.items():
        source = by_key.get((dataset, sid))
        if source is None:
            continue  # a session not in this training set (held out, or another corpus)
        index = {tid: t.index for t in source.turns for tid in t.source.turn_ids}
        turns = list(source.turns)
        new_id = f"{sid}#aug{variant}"
        notes = []
        for rw in rewrites:
            i = index.get(rw.turn_id)
            where = f"line {rw.line}"
            if i is None or turns[i].meta.get("merged_speakers") or turns[i].speaker_role != rw.speaker:
                reason = ("not a turn of the session" if i is None else "turn holds both speakers"
                          if turns[i].meta.get("merged_speakers") else "speaker differs from the corrected turn")
                problems.append(Problem("warning", "augment.skipped", f"rewrite skipped: {reason}",
                                        str(paths[0]) if len(paths) == 1 else "augmentation tables", None, f"{sid} {where}"))
                continue
            turns[i] = replace(turns[i], text=rw.text, clean_text=" ".join(rw.text.split()), nonverbal=(),
                               utterances=())
            single, multi = ("rupture", "markers") if rw.speaker == "client" else ("repair", "strategies")
            notes.append(Annotation(new_id, i, single, rw.codes[single][0], 1.0, SOURCE))
            notes += [Annotation(new_id, i, multi, c, 1.0, SOURCE) for c in rw.codes[multi]]
        if not notes:
            continue
        turns = [replace(t, session_id=new_id) for t in turns]
        out.append(replace(source, session_id=new_id, turns=tuple(turns), annotations=tuple(notes),
                           meta={**source.meta, "augmented_from": sid}))
    return out, problems


def session_group(session: Session) -> str:
    """The real session a session stands for: its own id, or its source's for a variant."""
    return str(session.meta.get("augmented_from") or session.session_id)


def is_augmented(session: Session) -> bool:
    return bool(session.meta.get("augmented_from"))


def variants_for(train: list[Session], augmented: list[Session]) -> list[Session]:
    """The variants whose source session is in ``train`` (same dataset and id)."""
    keys = {(s.source_format, s.session_id) for s in train if not is_augmented(s)}
    return [a for a in augmented if (a.source_format, session_group(a)) in keys]
