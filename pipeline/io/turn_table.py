"""The turn table of a run as ``turns.parquet`` and a Hugging Face dataset, written in batches.

:class:`TurnTableWriter` takes turn records one at a time and never holds more than one batch
of them: each batch becomes a Parquet row group (zstd) and a record batch of an Arrow IPC file
that backs the Hugging Face dataset (memory-mapped, then ``save_to_disk``). Both files are
written to temporary names and swapped in on :meth:`TurnTableWriter.close`; :meth:`abort`
leaves the previous files as they were and no temporary file behind. The same records give
byte-identical files (fixed batch size, fingerprint derived from the Parquet bytes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pipeline.io.files import _turn_schema, _umask, file_sha256, temp_path_beside

BATCH_ROWS = 8192  # rows per Parquet row group and Arrow record batch


def dataset_features():
    """The ``datasets.Features`` of a turn record (the same columns as turns.parquet)."""
    from datasets import Features, Sequence, Value

    from pipeline.records import RUPTURE_CLASSES, TURN_RECORD_FIELDS

    code = {"code": Value("string"), "score": Value("float64")}
    types = {"string": Value("string"), "string?": Value("string"), "int": Value("int64"),
             "number?": Value("float64"), "list<string>": Sequence(Value("string")),
             "list<int>": Sequence(Value("int64")), "list<code>": [code],
             "scores?": {c: Value("float64") for c in RUPTURE_CLASSES}}
    return Features({f.name: types[f.metadata["kind"]] for f in TURN_RECORD_FIELDS})


class TurnTableWriter:
    """Streams turn records into ``parquet_path`` and/or the dataset folder ``dataset_path``."""

    def __init__(self, parquet_path: Path | None, dataset_path: Path | None, batch_rows: int = BATCH_ROWS):
        import pyarrow as pa
        import pyarrow.parquet as pq


        self.schema = _turn_schema()
        self.names = set(self.schema.names)
        self.batch_rows = batch_rows
        self.rows: list[dict] = []  # records not yet in a batch
        self.pieces: list = []  # Arrow tables not yet in a batch, before ``rows`` (see add_rows)
        self.piece_rows = 0
        self.count = 0
        self.parquet_path, self.dataset_path = parquet_path, dataset_path
        self._pq_tmp = self._ds_tmp = None
        self._pq = self._ipc = None
        if parquet_path is not None:
            parquet_path.parent.mkdir(parents=True, exist_ok=True)
            self._pq_tmp = temp_path_beside(parquet_path)
            self._pq = pq.ParquetWriter(str(self._pq_tmp), self.schema, compression="zstd")
        if dataset_path is not None:
            dataset_path.parent.mkdir(parents=True, exist_ok=True)
            self._ds_tmp = Path(tempfile.mkdtemp(prefix=f".{dataset_path.name}.", dir=dataset_path.parent))
            self._ipc_schema = dataset_features().arrow_schema
            self._ipc = pa.ipc.new_stream(str(self._ds_tmp / "table.arrow"), self._ipc_schema)

    def add(self, record: dict) -> None:
        self.rows.append({k: v for k, v in record.items() if k in self.names})
        self.count += 1
        if len(self.rows) + self.piece_rows >= self.batch_rows:
            self._flush()

    def add_rows(self, table) -> None:
        """Rows already in Arrow form (a slice of the previous run's dataset, see
        ``pipeline.run.corpus_index``): batched with the records around them exactly as if each
        had come through :meth:`add`, so the files get the same bytes."""
        if not table.num_rows:
            return
        self._rows_to_piece()
        self.pieces.append(table.select(self.schema.names))
        self.piece_rows += table.num_rows
        self.count += table.num_rows
        while self.piece_rows >= self.batch_rows:
            self._write(self._take(self.batch_rows))

    def _rows_to_piece(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.pieces.append(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.piece_rows += len(self.rows)
            self.rows = []

    def _take(self, n: int):
        """The first ``n`` rows of the pieces as one record batch (contiguous arrays)."""
        import pyarrow as pa

        table = pa.concat_tables(self.pieces).replace_schema_metadata(self.schema.metadata)
        head, rest = table.slice(0, n), table.slice(n)
        self.pieces = [rest] if rest.num_rows else []
        self.piece_rows = rest.num_rows
        # concatenated with an empty table, every column is copied into fresh buffers even when
        # the batch lies inside one slice (a slice keeps its parent's buffers, which Arrow's IPC
        # writer would write differently from those of the same rows built from records)
        empty = pa.Table.from_pylist([], schema=self.schema)
        (batch,) = pa.concat_tables([head, empty]).combine_chunks().to_batches()  # one chunk a column: one batch
        return batch

    def _flush(self) -> None:
        import pyarrow as pa

        if self.pieces:  # rows from add_rows among them: one table, cut into batches
            self._rows_to_piece()
            while self.piece_rows:
                self._write(self._take(min(self.batch_rows, self.piece_rows)))
            return
        if not self.rows:
            return
        batch = pa.RecordBatch.from_pylist(self.rows, schema=self.schema)  # records only: as always
        self.rows = []
        self._write(batch)

    def _write(self, batch) -> None:
        if self._pq is not None:
            self._pq.write_batch(batch)
        if self._ipc is not None:
            self._ipc.write_batch(batch.replace_schema_metadata(self._ipc_schema.metadata))

    def close(self) -> None:
        """Write what is left and swap both outputs in (Parquet first)."""
        try:
            self._flush()
            if self._pq is not None:
                self._pq.close()
                self._pq = None
                with open(self._pq_tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.chmod(self._pq_tmp, 0o666 & ~_umask())
                os.replace(self._pq_tmp, self.parquet_path)
                self._pq_tmp = None
            if self._ipc is not None:
                self._ipc.close()
                self._ipc = None
                self._save_dataset()
        except BaseException:
            self.abort()
            raise

    def _save_dataset(self) -> None:
        from datasets import Dataset, DatasetInfo
        from datasets.table import MemoryMappedTable
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
        table_path = self._ds_tmp / "table.arrow"
        fingerprint = file_sha256(table_path)[:16]  # deterministic: the same rows give the same bytes
        ds = Dataset(MemoryMappedTable.from_file(str(table_path)), info=DatasetInfo(features=dataset_features()),
                     fingerprint=fingerprint)
        # an empty run still gets a dataset that loads (save_to_disk would pick 0 shards)
        ds.save_to_disk(str(self._ds_tmp / "ds"), **({} if self.count else {"num_shards": 1}))
        del ds
        old = self.dataset_path.with_name(f".{self.dataset_path.name}.old")
        shutil.rmtree(old, ignore_errors=True)  # left by a run killed during the swap
        if self.dataset_path.exists():
            os.replace(self.dataset_path, old)
        os.replace(self._ds_tmp / "ds", self.dataset_path)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self._ds_tmp, ignore_errors=True)
        self._ds_tmp = None

    def abort(self) -> None:
        """Drop the temporary files (after a failure such as a full disk)."""
        for writer in (self._pq, self._ipc):
            try:
                if writer is not None:
                    writer.close()
            except Exception:  # noqa: BLE001 - the temporary files go anyway
                pass
        self._pq = self._ipc = None
        self.rows, self.pieces, self.piece_rows = [], [], 0
        if self._pq_tmp is not None:
            Path(self._pq_tmp).unlink(missing_ok=True)
        if self._ds_tmp is not None:
            shutil.rmtree(self._ds_tmp, ignore_errors=True)
