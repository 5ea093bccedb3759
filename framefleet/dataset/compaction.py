"""Compaction: the parts of a job's results tables rewritten as a few large files.

Runs when a job ends (whoever ends it writes the report and compacts) and on a schedule while a
job follows a prefix. It reads every compacted file and part (`open_results`: one row per item,
the newest part winning), writes the rows sorted by item into files of up to `ROWS_PER_FILE`
rows under a new generation name, then deletes what it read. Readers of the raw files between
the two steps see an item twice at worst, never lose one; `open_results` counts it once. A part
rewritten while the compaction ran (a redone message) is not deleted: its tag changed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from framefleet.core.outputs import table_prefix
from framefleet.core.storage import Storage
from framefleet.core.tables import DETECTIONS, IMAGES, SCHEMAS, TABLES
from framefleet.dataset.views import (
    BATCH_ROWS,
    MEMORY_LIMIT,
    Fill,
    Results,
    open_results,
    table_files,
)

log = logging.getLogger(__name__)

ROWS_PER_FILE = 2_000_000
"""Rows per compacted file: about 30-60 MB of detections, read fast and few in number."""

_ORDER = {DETECTIONS: "item, frame NULLS FIRST, rank"}


@dataclass
class Compacted:
    """What a compaction did: rows and files written per table, files it removed, and the
    detections per class in the tables (`class_counts`)."""

    rows: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    removed: int = 0
    seconds: float = 0.0


def compact(dst: Storage, fill: Fill | None = None, memory_limit: str = MEMORY_LIMIT) -> Compacted:
    """Rewrite the results tables under the output root ``dst`` as compacted files.

    Args:
        dst: the job's output root.
        fill: rows for items the tables lack (see `open_results`): the job state's failures,
            and items whose part was never written.
        memory_limit: DuckDB's memory cap; the rows beyond it spill to a temporary folder.

    Raises:
        StorageError: listing, reading, writing or deleting under ``dst`` failed; what was
            written stays readable, and a later compaction finishes the work.
    """
    start = time.perf_counter()
    done = Compacted()
    generation = f"{time.time_ns() // 1_000_000:013d}"
    with (
        open_results(dst, fill, memory_limit) as results,
        tempfile.TemporaryDirectory(prefix="framefleet-compact-") as tmp,
    ):
        done.classes = class_counts(results)
        for table in TABLES:
            order = _ORDER.get(table, "item")
            query = results.con.sql(f"SELECT * FROM {table} ORDER BY {order}")
            reader = query.to_arrow_reader(BATCH_ROWS)
            keys, rows = _write_files(dst, table, generation, reader, Path(tmp))
            done.written.extend(keys)
            done.rows[table] = rows
        read = {key: tag for files in results.read.values() for key, tag in files.items()}
    written = set(done.written)
    for table in TABLES:
        for obj in table_files(dst, table):
            if obj.key in read and read[obj.key] == obj.tag and obj.key not in written:
                dst.delete(obj.key)
                done.removed += 1
    done.seconds = time.perf_counter() - start
    log.info(
        "compacted %s: %s rows in %d file(s), %d file(s) removed, %.1f s",
        dst.uri,
        done.rows,
        len(done.written),
        done.removed,
        done.seconds,
    )
    return done


def class_counts(results: Results) -> dict[str, int]:
    """Detections per class name, most first; a classifier's top-1 class only (rank 0), as the
    job state counts them."""
    rows = results.sql(
        f"""SELECT coalesce(d.class_name, 'class_' || d.class_id), count(*) AS n
        FROM {DETECTIONS} d JOIN {IMAGES} i ON d.item = i.item AND d.part = i.part
        WHERE i.task IS DISTINCT FROM 'classification' OR d.rank = 0
        GROUP BY 1 ORDER BY n DESC, 1"""
    ).fetchall()
    return {str(name): int(n) for name, n in rows}


def _write_files(
    dst: Storage, table: str, generation: str, reader: pa.RecordBatchReader, tmp: Path
) -> tuple[list[str], int]:
    """Write ``reader``'s rows as files of up to `ROWS_PER_FILE` rows; their keys and the rows."""
    schema = SCHEMAS[table]
    keys: list[str] = []
    total = 0
    writer: pq.ParquetWriter | None = None
    path = tmp / f"{table}.parquet"
    in_file = 0

    def close() -> None:
        nonlocal writer
        if writer is None:
            return
        writer.close()
        writer = None
        key = f"{table_prefix(table)}{generation}-{len(keys):04d}.parquet"
        dst.upload(path, key)
        keys.append(key)

    for batch in reader:
        if not batch.num_rows:
            continue
        if writer is None:
            writer = pq.ParquetWriter(path, schema, compression="zstd")
            in_file = 0
        writer.write_table(pa.Table.from_batches([batch]).cast(schema))
        in_file += batch.num_rows
        total += batch.num_rows
        if in_file >= ROWS_PER_FILE:
            close()
    close()
    return keys, total
