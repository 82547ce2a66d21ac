"""Writing coded corpora: the one module that writes run outputs to disk.

Every file is written atomically (temporary file in the same folder, then ``os.replace``), so a
killed run never leaves a half-written file. Outputs are deterministic: the same inputs give
byte-identical files (sorted keys, fixed session order, no timestamps).

CSV exports neutralise spreadsheet formula injection: a cell starting with ``= + - @`` (or tab /
carriage return) gets a leading apostrophe, as OWASP recommends.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import stat
import unicodedata
import tempfile
from pathlib import Path
from functools import lru_cache
from typing import Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# the CSV review sheet (``rupture-coder review export --format csv``, and the file a report page's
# review mode saves): one row per turn; empty code cells agree with the model
REVIEW_SHEET_FIELDS = ("item_id", "session_id", "turn", "speaker", "speaker_id", "context", "text",
                       "model_rupture", "model_markers", "model_repair", "model_strategies", "model_uncertainty",
                       "rupture", "markers", "repair", "strategies", "note")
TURN_CSV_FIELDS = ("session_id", "turn", "source_turns", "speaker", "speaker_id", "start", "end", "text",
                   "rupture", "p_none", "p_withdrawal", "p_confrontation", "markers", "repair",
                   "repair_score", "strategies", "uncertainty", "model")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks. A named pipe or a device (which would block
    or never end) raises OSError(EINVAL) instead of being opened."""
    mode = os.stat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a folder fails in open() as before
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MAX_SLUG = 80
RESERVED = {"index", "con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
            *(f"lpt{i}" for i in range(10))}


def safe_filename(session_id: str) -> str:
    """The one file stem for a session id or key (report pages, timelines, state files): a deterministic, filesystem- and URL-safe file stem for a session id (no extension).

    An id that is already a lowercase slug (``[a-z0-9._-]``, no ``--``, not reserved) is kept
    as it is; any other id becomes ``<slug>--<12 hex of sha256(id)>``. Kept ids never contain
    ``--``, so kept and hashed stems cannot collide; stems are lowercase, so they stay distinct
    on case-insensitive file systems.
    """
    sid = str(session_id)
    ascii_id = unicodedata.normalize("NFKD", sid).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9._]+", "-", ascii_id).strip("-.")[:MAX_SLUG].strip("-.")
    if slug and slug == sid and slug.split(".")[0] not in RESERVED:
        return slug
    digest = hashlib.sha256(sid.encode("utf-8")).hexdigest()[:12]
    return f"{slug or 'session'}--{digest}"


class AtomicFile:
    """A file written beside its target and swapped in whole: a temporary file in the same folder,
    flushed and synced, given the permissions the umask allows, then ``os.replace``d onto the
    target by :meth:`commit`. :meth:`abort` (or an exception inside ``with``) drops it and leaves
    any previous file as it was. The one way this project writes a file."""

    def __init__(self, path: str | Path, binary: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.fh = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")

    def write(self, data) -> None:
        self.fh.write(data)

    def commit(self) -> Path:
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        try:
            self.fh.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def temp_path_beside(path: Path) -> Path:
    """A new empty temporary file in ``path``'s folder (hidden, ``.tmp``), for writers that need a
    path rather than a handle (Parquet); left-over ones are removed by :func:`remove_temp_files`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@lru_cache(maxsize=1)
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (see :class:`AtomicFile`)."""
    with AtomicFile(path, binary=isinstance(data, bytes)) as fh:
        fh.write(data)
    return Path(path)


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def write_json(path: Path, obj) -> None:
    """The one JSON writer: sorted keys, indent 2, UTF-8 (not escaped), atomic."""
    atomic_write(path, json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2, default=str) + "\n")


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    atomic_write(path, "".join(dumps(r) + "\n" for r in records))


def safe_cell(value) -> str:
    """A CSV cell that spreadsheets will not evaluate as a formula."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else (dumps(value) if isinstance(value, (dict, list)) else str(value))
    return "'" + text if text.startswith(FORMULA_START) else text


def write_csv(path: Path, fields: Iterable[str], rows: Iterable[dict]) -> None:
    fields = list(fields)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([safe_cell(row.get(f)) for f in fields])
    atomic_write(path, buf.getvalue())


def turn_csv_row(record: dict) -> dict:
    scores = record.get("rupture_scores") or {}
    return {
        **record,
        "source_turns": ";".join(record["source_turns"]),
        "p_none": scores.get("none"), "p_withdrawal": scores.get("withdrawal"),
        "p_confrontation": scores.get("confrontation"),
        "markers": ";".join(m["code"] for m in record["markers"]),
        "strategies": ";".join(s["code"] for s in record["strategies"]),
    }


def session_csv_row(record: dict) -> dict:
    return {**record, "markers": dumps(record["markers"]), "strategies": dumps(record["strategies"])}


def timeline_csv_rows(timeline: dict) -> list[dict]:
    rows = []
    for e in timeline["episodes"]:
        rows.append({"kind": "episode", "id": e["id"], "type": e["type"], "start_turn": e["start_turn"],
                     "end_turn": e["end_turn"], "start_s": e["start_s"], "end_s": e["end_s"],
                     "markers": ";".join(e["markers"]), "peak_score": e["peak_score"],
                     "repair_turns": ";".join(str(r["turn"]) for r in e["repair_attempts"]),
                     "repair_strategies": ";".join(sorted({s for r in e["repair_attempts"] for s in r["strategies"]})),
                     "resolved": e["resolved"]})
    for s in timeline["segments"]:
        rows.append({"kind": "segment", "id": s["index"], "type": s["unit"], "start_turn": s["start_turn"],
                     "end_turn": s["end_turn"], "start_s": s["start_s"], "end_s": s["end_s"],
                     "withdrawal_turns": s["counts"]["withdrawal"], "confrontation_turns": s["counts"]["confrontation"],
                     "withdrawal_salience": s["salience"]["withdrawal"],
                     "confrontation_salience": s["salience"]["confrontation"]})
    return rows


TIMELINE_CSV_FIELDS = ("kind", "id", "type", "start_turn", "end_turn", "start_s", "end_s", "markers",
                       "peak_score", "repair_turns", "repair_strategies", "resolved", "withdrawal_turns",
                       "confrontation_turns", "withdrawal_salience", "confrontation_salience")


def write_parquet(path: Path, records: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(_arrow_ready(records), schema=_turn_schema())
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="zstd")
    atomic_write(path, buf.getvalue().to_pybytes())


def _turn_schema():
    """The Arrow schema of ``turns.parquet``: one column per :class:`~pipeline.records.TurnRecord`
    field, typed from the field's kind."""
    import pyarrow as pa

    from pipeline.records import RUPTURE_CLASSES, TURN_RECORD_FIELDS

    code = pa.struct([("code", pa.string()), ("score", pa.float64())])
    types = {"string": pa.string(), "string?": pa.string(), "int": pa.int64(), "number?": pa.float64(),
             "list<string>": pa.list_(pa.string()), "list<int>": pa.list_(pa.int64()), "list<code>": pa.list_(code),
             "scores?": pa.struct([(c, pa.float64()) for c in RUPTURE_CLASSES])}
    return pa.schema([(f.name, types[f.metadata["kind"]]) for f in TURN_RECORD_FIELDS])


def _arrow_ready(records: list[dict]) -> list[dict]:
    names = set(_turn_schema().names)
    return [{k: v for k, v in r.items() if k in names} for r in records]


def remove_temp_files(folder: Path, subfolders: Iterable[str] = ()) -> None:
    """Temporary files and folders that a killed writer left behind (``.NAME.*.tmp`` from the
    atomic writes, ``.NAME.*`` folders from the turn table's dataset writer). Call only while nothing
    writes into the folder."""
    import shutil

    folder = Path(folder)
    for sub in (folder, *(folder / s for s in subfolders)):
        for tmp in sub.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
    for tmp in folder.glob(".turns_dataset.*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
