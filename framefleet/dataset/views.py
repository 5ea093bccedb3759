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
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

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

RUN_FILES = 1000
"""Local parts one short-lived DuckDB connection copies into a local run file: DuckDB keeps
state for every file it has scanned until its connection closes (50k parts held 100 MB)."""

Fill = Callable[[duckdb.DuckDBPyConnection], dict[str, pa.Table]]
"""Given the connection with ``raw_images`` loaded, the rows of items the tables lack."""


@dataclass
class Results:
    """An open DuckDB connection whose ``images`` and ``detections`` views are the tables.

    Attributes:
        con: the connection (``raw_images``/``raw_detections`` hold every row as written).
        read: key -> tag of every file read, per table (compaction deletes what it read, unless
            it was rewritten since).
    """

    con: duckdb.DuckDBPyConnection
    read: dict[str, dict[str, str]] = field(default_factory=dict)

    def sql(self, query: str, params: Sequence[object] | None = None) -> duckdb.DuckDBPyConnection:
        """Run ``query`` over the tables; fetch from what it returns (``fetchall``,
        ``to_arrow_reader``)."""
        return self.con.execute(query, params)


def table_files(dst: Storage, table: str) -> Iterator[StorageObject]:
    """The compacted files and the parts of ``table`` under the output root ``dst``, listed
    lazily (a million-item job has 125k parts)."""
    for prefix in (table_prefix(table), table_parts_prefix(table)):
        yield from dst.list(prefix, suffixes=[".parquet"])


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
            con.execute("SET enable_progress_bar = false")  # it would print into `query`
            results = Results(con)
            for table in TABLES:
                results.read[table] = {}
                _load(con, dst, table, results.read[table], Path(tmp))
            _add_missing(con, {} if fill is None else fill(con))
            _create_views(con)
            yield results
        finally:
            con.close()


def _load(
    con: duckdb.DuckDBPyConnection, dst: Storage, table: str, read: dict[str, str], tmp: Path
) -> None:
    """``raw_<table>``: every row of the table's files under ``dst`` (their tags noted in
    ``read``), as a view DuckDB reads from local Parquet files.

    Compacted files in a local folder are read in place. Local parts are copied into run files
    of `RUN_FILES` parts each, by a DuckDB connection of their own; anything else (S3) is
    streamed into one local file a batch at a time. So the memory it takes does not grow with
    the number of parts."""
    in_place: list[str] = []
    chunk: list[str] = []
    remote: list[StorageObject] = []

    def flush_chunk() -> None:
        run = tmp / f"{table}-run{len(in_place):05d}.parquet"
        _copy_run(chunk, run, con)
        in_place.append(str(run))
        chunk.clear()

    for obj in table_files(dst, table):
        read[obj.key] = obj.tag
        path = dst.local_path(obj.key)
        if path is None:
            remote.append(obj)  # small: the parts' rows wait in S3, not here
        elif obj.key.startswith(table_prefix(table)):
            in_place.append(str(path))
        else:
            chunk.append(str(path))
            if len(chunk) >= RUN_FILES:
                flush_chunk()
    if chunk:
        flush_chunk()
    if remote:
        run = tmp / f"{table}-copied.parquet"
        with pq.ParquetWriter(run, SCHEMAS[table], compression="snappy") as writer:
            for batch in _coalesce(_batches(dst, remote, SCHEMAS[table])):
                writer.write_batch(batch)
        in_place.append(str(run))
    if not in_place:
        con.register("empty", SCHEMAS[table].empty_table())
        con.execute(f"CREATE TABLE raw_{table} AS SELECT * FROM empty")
        con.unregister("empty")
        return
    listed = ", ".join(_quote(path) for path in in_place)
    con.execute(f"CREATE VIEW raw_{table} AS SELECT * FROM read_parquet([{listed}])")


def _copy_run(paths: Sequence[str], run: Path, con: duckdb.DuckDBPyConnection) -> None:
    """Copy the rows of the Parquet files ``paths`` into ``run`` with a connection that closes
    after (it frees what DuckDB keeps for each file it scanned)."""
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()
    copier = duckdb.connect()
    try:
        copier.execute(f"SET memory_limit = '{limit[0] if limit else MEMORY_LIMIT}'")
        copier.execute("SET threads = 1")
        listed = ", ".join(_quote(path) for path in paths)
        copier.execute(f"COPY (SELECT * FROM read_parquet([{listed}])) TO {_quote(str(run))}")
    finally:
        copier.close()


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _batches(
    dst: Storage, files: Sequence[StorageObject], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """The batches of ``files`` (not local: on S3 a small file in one GET, a large one by
    ranges), each cast to the declared schema, read at most `READERS` files ahead, so memory
    stays bounded however many parts there are."""

    def fetch(obj: StorageObject) -> pq.ParquetFile:
        if obj.size <= WHOLE_BYTES:
            return pq.ParquetFile(pa.BufferReader(dst.read_bytes(obj.key)))
        return pq.ParquetFile(dst.open_read(obj.key))

    with ThreadPoolExecutor(READERS, thread_name_prefix="framefleet-parts") as pool:
        # Executor.map would submit every file at once and hold them all in memory.
        ahead: deque[Future[pq.ParquetFile]] = deque()
        pending = iter(files)
        for obj in islice(pending, READERS):
            ahead.append(pool.submit(fetch, obj))
        while ahead:
            parquet = ahead.popleft().result()
            for obj in islice(pending, 1):
                ahead.append(pool.submit(fetch, obj))
            for batch in parquet.iter_batches(BATCH_ROWS):
                yield pa.Table.from_batches([batch]).cast(schema).to_batches()[0]


def _coalesce(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The same rows in batches of at least `BATCH_ROWS` (but the last): row groups of a
    useful size, where a part holds a few rows."""
    held: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        held.append(batch)
        rows += batch.num_rows
        if rows >= BATCH_ROWS:
            yield from pa.Table.from_batches(held).combine_chunks().to_batches()
            held, rows = [], 0
    if rows:
        yield from pa.Table.from_batches(held).combine_chunks().to_batches()


def _add_missing(con: duckdb.DuckDBPyConnection, extra: dict[str, pa.Table]) -> None:
    """``extra_<table>``: the ``extra`` rows of items the tables lack entirely (never a second
    row of an item); empty without ``extra``."""
    for table in TABLES:
        con.register(f"given_{table}", extra.get(table, SCHEMAS[table].empty_table()))
    con.execute(
        f"""CREATE TEMP TABLE missing AS SELECT DISTINCT item FROM given_{IMAGES}
        WHERE item NOT IN (SELECT item FROM raw_{IMAGES})"""
    )
    for table in TABLES:
        con.execute(
            f"""CREATE TEMP TABLE extra_{table} AS SELECT * FROM given_{table}
            WHERE item IN (SELECT item FROM missing)"""
        )
        con.unregister(f"given_{table}")


def _create_views(con: duckdb.DuckDBPyConnection) -> None:
    # Newest part wins; the part name breaks a tie of equal timestamps the same way everywhere.
    con.execute(
        f"""CREATE VIEW {IMAGES} AS
        SELECT * FROM (
            SELECT * FROM raw_{IMAGES} UNION ALL BY NAME SELECT * FROM extra_{IMAGES}
        )
        QUALIFY row_number() OVER (PARTITION BY item ORDER BY written_at DESC, part DESC) = 1"""
    )
    con.execute(
        f"""CREATE VIEW {DETECTIONS} AS
        SELECT d.* FROM (
            SELECT * FROM raw_{DETECTIONS} UNION ALL BY NAME SELECT * FROM extra_{DETECTIONS}
        ) d
        SEMI JOIN {IMAGES} i ON d.item = i.item AND d.part = i.part"""
    )
