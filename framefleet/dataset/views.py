"""The results tables of an output root, opened in DuckDB: ``images`` and ``detections``.

Every compacted file and every part not compacted yet is read, so the tables are complete while
a job still runs. An item written twice (a redelivered or retried message that did its item
again) counts once: its newest part wins, and only that part's detections are kept. The raw
rows land in a DuckDB database file in a temporary folder, so a table larger than
`MEMORY_LIMIT` spills to disk instead of growing the process.

    >>> with open_results(open_storage("s3://out/run1/")) as results:
    ...     results.sql("SELECT class_name, count(*) FROM detections GROUP BY 1").fetchall()
    [('person', 812), ('car', 77)]
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from framefleet.core.outputs import table_parts_prefix, table_prefix
from framefleet.core.storage import Storage, StorageObject
from framefleet.core.tables import DETECTIONS, IMAGES, SCHEMAS, TABLES

MEMORY_LIMIT = "256MB"
"""DuckDB's memory cap for the tables; beyond it, it spills to its temporary folder."""

READERS = 16
"""Parts read in parallel (object-store latency, not CPU, bounds reading many small parts)."""

WHOLE_BYTES = 8 << 20
"""Files up to this size are fetched in one read; larger ones are read by ranges as needed."""

BATCH_ROWS = 65_536

Fill = Callable[[duckdb.DuckDBPyConnection], dict[str, pa.Table]]
"""Given the connection with ``raw_images`` loaded, the rows of items the tables lack."""


@dataclass
class Results:
    """An open DuckDB connection whose ``images`` and ``detections`` views are the tables.

    Attributes:
        con: the connection (``raw_images``/``raw_detections`` hold every row as written).
        files: the keys read for each table (compaction deletes what it read).
    """

    con: duckdb.DuckDBPyConnection
    files: dict[str, list[StorageObject]] = field(default_factory=dict)

    def sql(self, query: str, params: Sequence[object] | None = None) -> duckdb.DuckDBPyConnection:
        """Run ``query`` over the tables; fetch from what it returns (``fetchall``,
        ``to_arrow_reader``)."""
        return self.con.execute(query, params)


def table_files(dst: Storage, table: str) -> list[StorageObject]:
    """The compacted files and the parts of ``table`` under the output root ``dst``."""
    found: list[StorageObject] = []
    for prefix in (table_prefix(table), table_parts_prefix(table)):
        found.extend(dst.list(prefix, suffixes=[".parquet"]))
    return found


@contextmanager
def open_results(
    dst: Storage, fill: Fill | None = None, memory_limit: str = MEMORY_LIMIT
) -> Iterator[Results]:
    """Open the results tables under the output root ``dst``.

    Args:
        dst: the job's output root.
        fill: gives rows for items the tables lack (the compaction's gaps); only the rows of
            items with no row at all are added.
        memory_limit: DuckDB's memory cap.

    Raises:
        StorageError: the output root could not be listed or a file read.
    """
    with tempfile.TemporaryDirectory(prefix="framefleet-results-") as tmp:
        con = duckdb.connect(os.path.join(tmp, "results.duckdb"))
        try:
            con.execute(f"SET memory_limit = '{memory_limit}'")
            con.execute(f"SET temp_directory = '{tmp}'")
            con.execute("SET preserve_insertion_order = false")
            results = Results(con)
            for table in TABLES:
                results.files[table] = table_files(dst, table)
                reader = _reader(dst, results.files[table], SCHEMAS[table])
                con.register("incoming", reader)
                con.execute(f"CREATE TABLE raw_{table} AS SELECT * FROM incoming")
                con.unregister("incoming")
            if fill is not None:
                _add_missing(con, fill(con))
            _create_views(con)
            yield results
        finally:
            con.close()


def _reader(
    dst: Storage, files: Sequence[StorageObject], schema: pa.Schema
) -> pa.RecordBatchReader:
    """One stream of record batches over ``files``, each cast to the declared schema."""

    def fetch(obj: StorageObject) -> pq.ParquetFile:
        if obj.size <= WHOLE_BYTES:
            return pq.ParquetFile(pa.BufferReader(dst.read_bytes(obj.key)))
        return pq.ParquetFile(dst.open_read(obj.key))

    def batches() -> Iterator[pa.RecordBatch]:
        with ThreadPoolExecutor(READERS, thread_name_prefix="framefleet-parts") as pool:
            # map keeps order and reads ahead; one file's batches at a time are in memory
            for parquet in pool.map(fetch, files):
                for batch in parquet.iter_batches(BATCH_ROWS):
                    yield pa.Table.from_batches([batch]).cast(schema).to_batches()[0]

    return pa.RecordBatchReader.from_batches(schema, _nonempty(batches()))


def _nonempty(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    return (b for b in batches if b.num_rows)


def _add_missing(con: duckdb.DuckDBPyConnection, extra: dict[str, pa.Table]) -> None:
    """Add the ``extra`` rows of items the tables lack entirely (never a second row)."""
    images = extra.get(IMAGES)
    if images is None or not images.num_rows:
        return
    detections = extra.get(DETECTIONS, pa.Table.from_pylist([], schema=SCHEMAS[DETECTIONS]))
    con.register("extra_images", images)
    con.register("extra_detections", detections)
    con.execute(
        "CREATE TEMP TABLE missing AS SELECT DISTINCT item FROM extra_images "
        "WHERE item NOT IN (SELECT item FROM raw_images)"
    )
    con.execute(
        "INSERT INTO raw_images SELECT * FROM extra_images WHERE item IN (SELECT item FROM missing)"
    )
    con.execute(
        "INSERT INTO raw_detections SELECT * FROM extra_detections "
        "WHERE item IN (SELECT item FROM missing)"
    )
    for name in ("extra_images", "extra_detections"):
        con.unregister(name)


def _create_views(con: duckdb.DuckDBPyConnection) -> None:
    # Newest part wins; the part name breaks a tie of equal timestamps the same way everywhere.
    con.execute(
        f"""CREATE VIEW {IMAGES} AS
        SELECT * FROM raw_{IMAGES}
        QUALIFY row_number() OVER (PARTITION BY item ORDER BY written_at DESC, part DESC) = 1"""
    )
    con.execute(
        f"""CREATE VIEW {DETECTIONS} AS
        SELECT d.* FROM raw_{DETECTIONS} d
        SEMI JOIN {IMAGES} i ON d.item = i.item AND d.part = i.part"""
    )
