"""Where each session's rows are in the corpus files, so that a re-run copies them instead of
rebuilding them.

``finish_run`` writes the corpus files (turns.jsonl/.csv/.parquet, the dataset, sessions.jsonl)
from the stored session states. Turning a state into those rows (parsing its JSON, the CSV
cells' formula guard, the JSON lines, the Arrow rows) is most of the cost of a re-run after one
input file changed: 6.4-7 s for 1,000 sessions, of which coding the changed session is 0.1 s.
So ``finish_run`` also writes ``OUT/.state/corpus-index``: for each session, the fingerprint of
its state and the byte ranges of its lines in turns.jsonl, turns.csv and sessions.jsonl, the
range of its rows in the dataset, and its de-identification findings (positions only, as in
phi_report.json); with the SHA-256 of each of those files. The next run
(:class:`PreviousOutputs`) copies a session's bytes and rows from the previous files when its
state still has the indexed fingerprint, and builds only the other sessions from their states.

The copied bytes are the bytes the state gives (the same function of the same state, tested
byte-identical to a run from scratch). The previous files are used only when the index is for
this rupture-coder version and every file still has the hash recorded: a file edited, truncated
or replaced since means a full rebuild from the states, as before. (Like the plan cache, the
index trusts the version: a development checkout that changes how rows are written without a
version bump should start from a fresh output folder or delete ``.state/corpus-index``.) The index is removed when a
run starts writing the corpus files and written again once they are all in place, so a run
interrupted in between leaves none. The index holds no transcript text: session keys (file and
session ids, as in the file names of ``.state/``), hashes, offsets and finding positions.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.io.files import atomic_write, dumps, file_sha256
from pipeline.run.config import STATE_DIR
from pipeline.version import __version__

log = logging.getLogger(__name__)
INDEX = "corpus-index"  # in OUT/.state/; no .json suffix, so it is never taken for a session state
FORMAT = 1
HASHED = ("turns.jsonl", "turns.csv", "sessions.jsonl")  # read back by byte range
DATASET = "turns_dataset"  # its Arrow files give the rows back as they were written


def index_path(out: str | Path) -> Path:
    return Path(out) / STATE_DIR / INDEX


def clear(out: str | Path) -> None:
    index_path(out).unlink(missing_ok=True)


@dataclass
class Entry:
    """One session's place in the corpus files: [start, end) of its bytes or rows."""

    fingerprint: str
    jsonl: tuple[int, int]
    csv: tuple[int, int]
    rows: tuple[int, int]
    session: tuple[int, int]
    findings: list = field(default_factory=list)

    def to_json(self) -> list:
        return [self.fingerprint, list(self.jsonl), list(self.csv), list(self.rows), list(self.session), self.findings]

    @classmethod
    def from_json(cls, item) -> "Entry":
        fingerprint, jsonl, csv_range, rows, session, findings = item
        ranges = [tuple(int(v) for v in r) for r in (jsonl, csv_range, rows, session)]
        if not isinstance(fingerprint, str) or not isinstance(findings, list) or any(
                len(r) != 2 or not 0 <= r[0] <= r[1] for r in ranges):
            raise ValueError("malformed entry")
        return cls(fingerprint, *ranges, findings=findings)


class IndexWriter:
    """Collects the entries and the hashes of the files as ``finish_run`` writes them."""

    def __init__(self):
        self.entries: dict[str, Entry] = {}
        self.digests = {name: hashlib.sha256() for name in HASHED}
        self.offsets = dict.fromkeys(HASHED, 0)

    def wrote(self, name: str, data: bytes) -> tuple[int, int]:
        """Record ``data`` written at the end of the file ``name``; returns its byte range."""
        self.digests[name].update(data)
        start = self.offsets[name]
        self.offsets[name] = start + len(data)
        return start, self.offsets[name]

    def write(self, out: Path) -> None:
        """Once every corpus file is in place (the dataset's Arrow files are hashed here)."""
        data_files = _dataset_files(out)
        if data_files is None:
            return
        record = {"format": FORMAT, "version": __version__,
                  "files": {**{name: d.hexdigest() for name, d in self.digests.items()},
                            **{f"{DATASET}/{p.name}": file_sha256(p) for p in data_files}},
                  "sessions": {key: e.to_json() for key, e in self.entries.items()}}
        atomic_write(index_path(out), dumps(record) + "\n")


class PreviousOutputs:
    """The corpus files of the previous run in ``out``, as the index describes them.
    :meth:`open` returns None when there is no usable index (none, another version, a file
    changed since): the caller then builds every session from its state."""

    def __init__(self, out: Path, entries: dict[str, Entry], hashes: dict[str, str], data_files: list[Path]):
        self.out, self.entries, self.hashes, self.data_files = out, entries, hashes, data_files
        self.handles: dict | None = None  # opened once the files are checked (at the first session copied)
        self._rows = None

    @classmethod
    def open(cls, out: str | Path) -> "PreviousOutputs | None":
        out = Path(out)
        try:
            record = json.loads(index_path(out).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.info("corpus index unreadable (%s): every session's rows are built from its state", type(err).__name__)
            return None
        try:
            if record.get("format") != FORMAT or record.get("version") != __version__:
                return None
            entries = {str(k): Entry.from_json(v) for k, v in record["sessions"].items()}
            hashes = {str(k): str(v) for k, v in record["files"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        data_files = _dataset_files(out)
        if data_files is None or sorted(f"{DATASET}/{p.name}" for p in data_files) != sorted(
                k for k in hashes if k.startswith(f"{DATASET}/")) or any(name not in hashes for name in HASHED):
            return None
        return cls(out, entries, hashes, data_files)

    def get(self, key: str, fingerprint: str | None) -> Entry | None:
        """The session's entry when its state still has the indexed fingerprint and the files
        are still those the index describes (checked once, when the first session matches, so
        that a run which re-codes everything never hashes them)."""
        entry = self.entries.get(key)
        if entry is None or fingerprint is None or entry.fingerprint != fingerprint:
            return None
        if self.handles is None and not self._check_and_open():
            self.entries = {}  # every session from its state
            return None
        return entry

    def _check_and_open(self) -> bool:
        names = (*HASHED, *(f"{DATASET}/{p.name}" for p in self.data_files))
        try:
            changed = next((n for n in names if file_sha256(self.out / n) != self.hashes[n]), None)
        except OSError:
            return False
        if changed is not None:  # edited, truncated or replaced since
            log.info("%s changed since the last run: every session's rows are built from its state", changed)
            return False
        handles = {}
        try:
            for name in HASHED:
                handles[name] = open(self.out / name, "rb")
        except OSError:
            for fh in handles.values():
                fh.close()
            return False
        self.handles = handles
        return True

    def read(self, name: str, span: tuple[int, int]) -> bytes:
        fh = self.handles[name]
        fh.seek(span[0])
        data = fh.read(span[1] - span[0])
        if len(data) != span[1] - span[0]:
            raise OSError(f"{name} is shorter than its index says")
        return data

    def rows(self, span: tuple[int, int]):
        """The session's rows of the dataset, as an Arrow table. The dataset's files are read
        forward one record batch at a time (a thousand rows), so memory stays bounded whatever
        the corpus's size; rows before the current batch (inputs reordered since) start the
        reading again from the first file."""
        if self._rows is None or span[0] < self._rows.first:
            self._rows = _BatchCursor(self.data_files)
        return self._rows.take(*span)

    def close(self) -> None:
        for fh in (self.handles or {}).values():
            fh.close()
        self.handles = None
        self.entries = {}
        self._rows = None


class _BatchCursor:
    """Rows of the dataset's Arrow files by index, read forward; holds one record batch."""

    def __init__(self, files: list[Path]):
        self._batches = _read_batches(files)
        self.first = 0  # index of the first row of ``batch``
        self.batch = None

    def take(self, start: int, end: int):
        import pyarrow as pa

        pieces, at = [], start
        while at < end:
            while self.batch is None or at >= self.first + self.batch.num_rows:
                if self.batch is not None:
                    self.first += self.batch.num_rows
                self.batch = next(self._batches, None)
                if self.batch is None:
                    raise OSError(f"{DATASET} holds fewer rows than its index says")
            n = min(end, self.first + self.batch.num_rows) - at
            pieces.append(self.batch.slice(at - self.first, n))
            at += n
        return pa.Table.from_batches(pieces)


def _read_batches(files: list[Path]):
    import pyarrow as pa

    for path in files:
        with pa.OSFile(str(path)) as fh:
            yield from pa.ipc.open_stream(fh)


def _dataset_files(out: Path) -> list[Path] | None:
    """The dataset's Arrow files in their order (from its state.json), or None."""
    try:
        state = json.loads((out / DATASET / "state.json").read_text(encoding="utf-8"))
        names = [item["filename"] for item in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(not isinstance(n, str) or "/" in n or "\\" in n or n.startswith(".") for n in names):
        return None
    return [out / DATASET / n for n in names]
