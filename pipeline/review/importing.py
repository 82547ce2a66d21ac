"""Importing reviewed codes: filled CSV review sheets and Label Studio JSON exports.

Every code is checked against the label file and the consistency rules of the coding manual
(a client turn gets no therapist codes and vice versa; the role's single layer, e.g. ``rupture``,
holds exactly one code; a non-default single code needs at least one code of its family in the
role's multi layer, e.g. ``withdrawal`` needs a ``withdrawal.*`` marker and ``repair`` a
strategy; the default code, ``none``, takes no multi codes). Errors are :class:`LabelError`s that
name the file, the row or task, the column and the bad value.

CSV semantics (coding manual, "CSV review sheet"), relative to the model's codes (from the run
when ``run_dir`` is given, else the sheet's ``model_*`` columns): an empty cell agrees with the
model; ``none`` rejects (no rupture / no repair / no markers / no strategies); a filled list,
``;``-separated, replaces the model's list. Rows are matched by ``item_id``.

Label Studio semantics: what was submitted is the whole coding; an empty multi group means no
codes, and the single group must be chosen. The annotator is ``human:ls-<completed_by>``, or
``human:<annotator>`` when an annotator id is given for a file coded by one person.

The result is a human layer: JSON lines ``{session_id, turn, layer, code, score: 1.0,
source: "human:<id>", scheme}`` (one line per code), written beside the model layer, never over
it. Notes go to ``<out stem>.notes.jsonl``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import ConfigError, LabelError
from pipeline.io.labels import COLUMNS as LABEL_COLUMNS, TurnLabel
from pipeline.io.files import FORMULA_START, atomic_write, dumps, write_csv
from pipeline.io.run_folder import RunFolder
from pipeline.records import TurnRecord
from pipeline.review.batch import CSV_FIELDS, SEPARATOR, model_codes, parse_item_id

NONE_CELL = "none"
ANNOTATOR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
RECORD_KEYS = ("session_id", "turn", "layer", "code", "score", "source", "scheme")


@dataclass(frozen=True)
class Coding:
    """One coder's validated codes for one turn (layers of the turn's role)."""

    session_id: str
    turn: int
    speaker: str
    source: str
    codes: Mapping[str, tuple[str, ...]]
    note: str = ""
    origin: str = ""  # "file, row 3 (item s1:4)" / "file, task 7 (item s1:4)"

    @property
    def key(self) -> tuple[str, int]:
        return (self.session_id, self.turn)


def check_annotator(annotator: str) -> str:
    if not ANNOTATOR_RE.match(annotator or ""):
        raise ConfigError(f"bad --annotator {annotator!r}", expected="letters, digits, . _ @ - (no spaces)",
                          fix="e.g. --annotator coder_b")
    return annotator


def _codes(book: Codebook, layer: str, values: Iterable[str], path, where: str, column: str,
           field: str = "column") -> tuple[str, ...]:
    values = [v.strip() for v in values if v.strip()]
    allowed = book.layer(layer).values
    bad = [v for v in values if v not in allowed]
    if bad:
        raise LabelError(f"{where}, {field} {column}: unknown {layer} code {bad[0]!r}", path=path,
                         expected=f"codes of {book.scheme} layer {layer!r}: {', '.join(allowed)}",
                         fix="copy codes exactly from the codes sheet (`rupture-coder codes`)")
    if book.layer(layer).kind == "single" and len(values) > 1:
        raise LabelError(f"{where}, {field} {column}: layer {layer} takes one code, got {SEPARATOR.join(values)!r}",
                         path=path, fix="keep one code")
    return tuple(dict.fromkeys(values))


def check_coding(book: Codebook, speaker: str, codes: Mapping[str, tuple[str, ...]], path, where: str,
                 field: str = "column") -> dict[str, tuple[str, ...]]:
    """Apply the consistency rules (module docstring) to one turn's codes; returns the codes of
    the speaker's layers. ``field`` names what a layer is in the file (CSV column, LS choices)."""
    role_layers = [name for name, layer in book.layers.items() if layer.applies_to == speaker]
    if not role_layers:
        raise LabelError(f"{where}, {field} speaker: {speaker!r} turns are not coded", path=path,
                         expected=f"one of {', '.join(dict.fromkeys(l.applies_to for l in book.layers.values()))}")
    for name in book.layers:
        if name not in role_layers and codes.get(name):
            raise LabelError(f"{where}, {field} {name}: {speaker} turns get no {name} codes",
                             path=path, found=repr(SEPARATOR.join(codes[name])), fix="leave it empty")
    out = {name: tuple(codes.get(name, ())) for name in role_layers}
    single = next((book.layer(n) for n in role_layers if book.layer(n).kind == "single"), None)
    if single is None:
        return out
    chosen = out[single.name]
    if len(chosen) != 1:
        raise LabelError(f"{where}, {field} {single.name}: no {single.name} code chosen", path=path,
                         expected=f"one of {', '.join(single.values)} (including {single.default!r})")
    for multi in (book.layer(n) for n in role_layers if book.layer(n).kind == "multi"):
        found, col = out[multi.name], multi.name
        if chosen[0] == single.default and found:
            clear = f"write {NONE_CELL!r} in {col}" if field == "column" else f"clear the {col} choices"
            raise LabelError(f"{where}, {field} {col}: {single.name} {chosen[0]!r} takes no {col}", path=path,
                             found=repr(SEPARATOR.join(found)), fix=f"{clear}, or choose a {single.name}")
        family = [c for c in found if _family(book, col, c) == chosen[0]]
        if chosen[0] != single.default and not family:
            raise LabelError(f"{where}, {field} {col}: {single.name} {chosen[0]!r} needs at least one {chosen[0]} {col} code",
                             path=path, found=repr(SEPARATOR.join(found)) if found else "none",
                             fix=f"add a {chosen[0]}.* code, or change {single.name}")
    return out


def _family(book: Codebook, layer: str, code: str) -> str | None:
    return next((c.family for c in book.layer(layer).codes if c.code == code), None)


# ---------------------------------------------------------------- CSV review sheets

def unescape_cell(value: str | None) -> str:
    """Undo :func:`pipeline.io.files.safe_cell` (a leading apostrophe before a formula start)."""
    value = value or ""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def _resolve(book: Codebook, layer: str, cell: str, model: tuple[str, ...] | None, path, where: str) -> tuple[str, ...]:
    cell = cell.strip()
    spec = book.layer(layer)
    if not cell:
        if model is None or (spec.kind == "single" and not model):
            raise LabelError(f"{where}, column {layer}: empty cell accepts the model's code, but the model has none",
                             path=path, fix=f"write the {layer} code")
        return model
    if cell == NONE_CELL:
        return () if spec.kind == "multi" else ((NONE_CELL,) if NONE_CELL in spec.values else (spec.default,))
    return _codes(book, layer, cell.split(SEPARATOR), path, where, layer)


def read_csv_sheet(path: str | Path, source: str, book: Codebook, run: Mapping | None = None) -> list[Coding]:
    """Codings of a filled CSV review sheet (see the module docstring for the semantics)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return _read_rows(path, csv.DictReader(handle, strict=True), source, book, run)
    except OSError as err:
        raise LabelError("cannot read review sheet", path=path, found=err.strerror) from None
    except UnicodeDecodeError:
        raise LabelError("review sheet is not UTF-8", path=path, fix='save as "CSV UTF-8"') from None
    except csv.Error as err:
        raise LabelError("review sheet is not valid CSV", path=path, found=str(err)) from None


def _read_rows(path: Path, reader: csv.DictReader, source: str, book: Codebook, run) -> list[Coding]:
    missing = [c for c in CSV_FIELDS if c not in (reader.fieldnames or [])]
    if missing:
        raise LabelError(f"review sheet lacks columns {', '.join(missing)}", path=path, line=1,
                         expected=", ".join(CSV_FIELDS), fix="import the sheet written by `rupture-coder review export`")
    out, seen = [], {}
    for row_no, row in enumerate(reader, start=2):  # spreadsheet row: the header is row 1
        coding = _csv_coding(path, row_no, row, source, book, run)
        if coding.key in seen:
            raise LabelError(f"row {row_no}, column item_id: item {_id(coding)!r} appears twice (also row {seen[coding.key]})",
                             path=path, fix="keep one row per item")
        seen[coding.key] = row_no
        out.append(coding)
    return out


def _id(coding: Coding) -> str:
    return f"{coding.session_id}:{coding.turn}"


def _csv_coding(path, row_no, row, source, book, run) -> Coding:
    raw_id = unescape_cell(row.get("item_id")).strip()
    key = parse_item_id(raw_id)
    where = f"row {row_no} (item {raw_id})"
    if key is None:
        raise LabelError(f"row {row_no}, column item_id: not an item id", path=path, found=repr(raw_id),
                         expected="'<session_id>:<turn>' as exported", fix="do not edit item_id")
    speaker = (row.get("speaker") or "").strip()
    if run is not None:
        record = run.get(key)
        if record is None:
            raise LabelError(f"{where}: item is not a turn of the run", path=path, fix="import against the run the sheet was exported from")
        if record.speaker != speaker:
            raise LabelError(f"{where}, column speaker: sheet says {speaker!r}, the run says {record.speaker!r}",
                             path=path, fix="do not edit the speaker column")
        model = model_codes(record, book)
    else:
        model = {name: _codes(book, name, (row.get(f"model_{name}") or "").split(SEPARATOR), path, where, f"model_{name}")
                 for name, layer in book.layers.items() if layer.applies_to == speaker}
    cells = {name: (row.get(name) or "") for name in book.layers}
    role_layers = [n for n, layer in book.layers.items() if layer.applies_to == speaker]
    codes = {}
    for name in book.layers:
        if name not in role_layers:
            codes[name] = _codes(book, name, [cells[name]], path, where, name) if cells[name].strip() else ()
        else:
            codes[name] = _resolve(book, name, cells[name], model.get(name), path, where)
    codes = check_coding(book, speaker, codes, path, where)
    return Coding(key[0], key[1], speaker, source, codes, (row.get("note") or "").strip(), f"{path}, {where}")


# ---------------------------------------------------------------- Label Studio exports

def read_ls_codings(path: str | Path, book: Codebook, annotator: str | None = None,
                    run: Mapping | None = None) -> list[Coding]:
    """Codings of a Label Studio JSON export (every submitted annotation of every task)."""
    from pipeline.review.labelstudio import SPEAKER_NAME, parse_export

    annotations = parse_export(path, book)
    users = sorted({a.completed_by for a in annotations})
    if annotator and len(users) > 1:
        raise LabelError(f"--annotator given, but the export holds annotations by {len(users)} users", path=path,
                         found=f"completed_by {', '.join(users)}", fix="leave out --annotator: each becomes human:ls-<id>")
    out, seen = [], {}
    for a in annotations:
        source = f"human:{annotator}" if annotator else f"human:ls-{a.completed_by}"
        speaker = a.speaker
        if run is not None:
            record = run.get((a.session_id, a.turn))
            if record is None:
                raise LabelError(f"{a.where}: item is not a turn of the run", path=path)
            speaker = record.speaker
        codes = {name: _codes(book, name, values, path, a.where, name, "choices") for name, values in a.codes.items()
                 if name != SPEAKER_NAME}
        codes = check_coding(book, speaker, codes, path, a.where, "choices")
        coding = Coding(a.session_id, a.turn, speaker, source, codes, a.note, f"{path}, {a.where}")
        if (source, coding.key) in seen:
            raise LabelError(f"{a.where}: {source} annotated this task twice (also {seen[(source, coding.key)]})",
                             path=path, fix="delete one annotation in Label Studio and export again")
        seen[(source, coding.key)] = a.where
        out.append(coding)
    return out


# ---------------------------------------------------------------- importing and writing

@dataclass(frozen=True)
class ImportResult:
    codings: tuple[Coding, ...]
    records: tuple[dict, ...]
    notes: tuple[dict, ...]

    def by_source(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for c in self.codings:
            entry = out.setdefault(c.source, {"turns": 0, "codes": 0})
            entry["turns"] += 1
            entry["codes"] += sum(len(v) for v in c.codes.values())
        return dict(sorted(out.items()))


def import_files(paths: list[str | Path], annotator: str | None = None, run_dir: str | Path | None = None,
                 book: Codebook | None = None) -> ImportResult:
    """Read CSV sheets (``.csv``) and Label Studio exports (``.json``) into a human layer."""
    book = book or load_codebook()
    if annotator is not None:
        check_annotator(annotator)
    run = {r.key: r for r in RunFolder(run_dir).iter_turns()} if run_dir else None
    codings: list[Coding] = []
    for path in map(Path, paths):
        suffix = path.suffix.lower()
        if suffix == ".csv":
            if not annotator:
                raise ConfigError("a CSV review sheet needs --annotator", path=path, fix="add --annotator YOUR_ID")
            codings += read_csv_sheet(path, f"human:{annotator}", book, run)
        elif suffix == ".json":
            codings += read_ls_codings(path, book, annotator, run)
        else:
            raise ConfigError("unknown review file type", path=path, expected=".csv (review sheet) or .json (Label Studio export)")
    seen: dict = {}
    for c in codings:
        if (c.source, c.key) in seen:
            raise LabelError(f"{c.source} coded item {_id(c)} twice", path=None,
                             found=f"{seen[(c.source, c.key)]} and {c.origin}", fix="import each annotator's coding once")
        seen[(c.source, c.key)] = c.origin
    return ImportResult(tuple(codings), tuple(r for c in codings for r in coding_records(c, book)),
                        tuple({"session_id": c.session_id, "turn": c.turn, "source": c.source, "note": c.note}
                              for c in codings if c.note))


def coding_records(coding: Coding, book: Codebook) -> list[dict]:
    """The Annotation-like records of one coding (one per code)."""
    return [{"session_id": coding.session_id, "turn": coding.turn, "layer": layer, "code": code, "score": 1.0,
             "source": coding.source, "scheme": book.scheme}
            for layer in book.layers for code in coding.codes.get(layer, ())]


def read_human_layer(path: str | Path, book: Codebook | None = None) -> list[dict]:
    """Read and validate a layer file (JSON lines of Annotation-like records)."""
    book = book or load_codebook()
    path = Path(path)
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise LabelError("cannot read label layer", path=path, found=err.strerror) from None
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise LabelError("not a JSON line", path=path, line=line_no, found=err.msg) from None
        if not isinstance(record, dict) or any(k not in record for k in ("session_id", "turn", "layer", "code", "source")):
            raise LabelError("not a label record", path=path, line=line_no, expected=f"keys {', '.join(RECORD_KEYS)}")
        if record["layer"] not in book.layers or record["code"] not in book.layer(record["layer"]).values:
            raise LabelError(f"unknown {record['layer']} code {record['code']!r}", path=path, line=line_no,
                             expected=f"a code of {book.scheme}")
        out.append({**record, "turn": int(record["turn"])})
    return out


def _sort_key(book: Codebook):
    order = {name: k for k, name in enumerate(book.layers)}
    return lambda r: (r["session_id"], int(r["turn"]), r["source"], order.get(r.get("layer"), -1), r.get("code", ""))


def write_human_layer(out: str | Path, result: ImportResult, protect: Iterable[str | Path] = (),
                      book: Codebook | None = None) -> dict:
    """Write (or extend) a human layer file and its notes file; returns counts.

    An existing file is extended: records of other coders and other turns are kept (conflicts
    stay, each with its own source); a coder's new coding of a turn replaces that coder's old
    coding of it. A file holding model records, a run's ``turns.jsonl`` or an input is refused."""
    book = book or load_codebook()
    out = Path(out)
    if out.name == "turns.jsonl" or any(out.resolve() == Path(p).resolve() for p in protect):
        raise ConfigError("--out would overwrite an input or a run's model layer", path=out,
                          fix="write the human layer to its own file, e.g. labels/human.jsonl")
    old = read_human_layer(out, book) if out.exists() else []
    if any(not str(r["source"]).startswith("human:") for r in old):
        raise ConfigError("--out holds non-human (model) records; a human layer is written beside them, never into them",
                          path=out, fix="choose another file")
    fresh = {(c.source, c.session_id, c.turn) for c in result.codings}
    kept = [r for r in old if (r["source"], r["session_id"], int(r["turn"])) not in fresh]
    records = sorted(kept + list(result.records), key=_sort_key(book))
    atomic_write(out, "".join(dumps(r) + "\n" for r in records))
    notes_path = out.with_name(out.stem + ".notes.jsonl")
    old_notes = [json.loads(x) for x in notes_path.read_text(encoding="utf-8").splitlines() if x.strip()] if notes_path.exists() else []
    notes = sorted([n for n in old_notes if (n["source"], n["session_id"], int(n["turn"])) not in fresh] + list(result.notes),
                   key=_sort_key(book))
    if notes:
        atomic_write(notes_path, "".join(dumps(n) + "\n" for n in notes))
    return {"records": len(records), "new_records": len(result.records), "replaced_records": len(old) - len(kept),
            "turns": len(result.codings), "notes": len(result.notes), "notes_path": str(notes_path) if notes else None}


# ---------------------------------------------------------------- label tables for training

def label_table(records: Iterable[Mapping], source: str | None = None, run_turns: list[TurnRecord] | None = None,
                datasets: Mapping[str, str] | None = None, book: Codebook | None = None) -> dict[tuple[str, str, str], TurnLabel]:
    """Turn human-layer records into a label table usable for training.

    Returns :class:`pipeline.io.labels.TurnLabel` rows keyed ``(dataset, session_id, turn_id)``,
    the shape :func:`pipeline.io.labels.read_label_table` returns and
    :func:`pipeline.io.labels.attach_labels` consumes, so corrected codes can train a model (write
    them with :func:`write_label_table` and pass the CSV to ``rupture-coder train --labels``).

    ``source`` picks one coder (``human:<id>``, e.g. a consensus layer); without it every turn
    must have been coded by a single source, else a LabelError names the turn. With
    ``run_turns`` (the run's turn records) a turn's row is repeated for each of its
    input turn ids (``source_turns``) and the speaker comes from the run; without it ``turn_id``
    is the turn index. ``datasets`` maps session id to the reader format (``hlqc``, ``csv``...;
    default ``""``)."""
    book = book or load_codebook()
    run = {r.key: r for r in run_turns or ()}
    grouped: dict[tuple[str, int], dict] = {}
    for r in records:
        if source is not None and r["source"] != source:
            continue
        entry = grouped.setdefault((r["session_id"], int(r["turn"])), {"sources": set(), "codes": {}})
        entry["sources"].add(r["source"])
        entry["codes"].setdefault(r["layer"], []).append(r["code"])
    table: dict[tuple[str, str, str], TurnLabel] = {}
    for (sid, turn), entry in sorted(grouped.items()):
        if len(entry["sources"]) > 1:
            raise LabelError(f"session {sid} turn {turn} was coded by {len(entry['sources'])} sources",
                             found=", ".join(sorted(entry["sources"])), fix="pass source= (e.g. a consensus layer)")
        speaker = run[(sid, turn)].speaker if (sid, turn) in run else next(
            book.layer(layer).applies_to for layer in entry["codes"])
        codes = {name: tuple(dict.fromkeys(entry["codes"].get(name, ()))) for name in book.layers}
        turn_ids = list(run[(sid, turn)].source_turns or [str(turn)]) if (sid, turn) in run else [str(turn)]
        dataset = (datasets or {}).get(sid, "")
        for tid in turn_ids:
            table[(dataset, sid, tid)] = TurnLabel(dataset, sid, tid, speaker, codes)
    return table


def write_label_table(path: str | Path, table: Mapping[tuple[str, str, str], TurnLabel]) -> None:
    """Write a label table as the CSV that :func:`pipeline.io.labels.read_label_table` reads."""
    rows = [{"dataset": lab.dataset, "session_id": lab.session_id, "turn_id": lab.turn_id, "speaker": lab.speaker,
             **{layer: SEPARATOR.join(lab.codes.get(layer, ())) for layer in LABEL_COLUMNS[4:]}}
            for lab in table.values()]
    write_csv(Path(path), LABEL_COLUMNS, rows)
