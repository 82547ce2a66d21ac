"""A small SQLite file shared by threads and processes: the embedding cache and the gate's
clean verdicts. One connection per thread (SQLite connections are not shared across threads),
write-ahead logging so that several processes can read while one writes, and an explicit
``close`` so that the -wal/-shm files are folded back when a step ends, not whenever the
garbage collector runs (outputs are compared byte for byte)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


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

    def close(self) -> None:
        """Close this thread's connection now."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()
