"""A small SQLite file shared by threads and processes: the embedding cache and the gate's
scan verdicts. One connection per thread (SQLite connections are not shared across threads),
write-ahead logging so that several processes can read while one writes, and an explicit
``close`` so that the -wal/-shm files are folded back when a step ends, not whenever the
garbage collector runs (outputs are compared byte for byte)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterator, Sequence


class SQLiteStore:
    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(schema)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def rows_where_in(self, query: str, keys: Sequence[str], params: Sequence = ()) -> Iterator[tuple]:
        """Rows of ``query`` (``{marks}`` where the key placeholders go, after ``params``) for
        ``keys``, 500 at a time (SQLite limits the number of parameters of one statement)."""
        conn = self._conn()
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            yield from conn.execute(query.format(marks=",".join("?" * len(chunk))), [*params, *chunk])

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close this thread's connection now (the connection sits in a reference cycle: left
        to the garbage collector, the -wal/-shm files stay beside the database until it runs)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()
