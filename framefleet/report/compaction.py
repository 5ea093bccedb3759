"""A job's results tables compacted when it ends, checked against the job state first.

The job state is the truth about which items ended how. Before compacting, every item it counts
that the tables lack gets its rows: a succeeded item from its result document (its part was
never written: a storage error at the time), a failed one from its recorded reason (a video
failed by its segment barrier, an item failed without running). So the tables end the job with
exactly one row per item the job state counts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import pyarrow as pa

from framefleet.core.documents import Document, read_document
from framefleet.core.errors import JobItemsExpired, PipelineError
from framefleet.core.outputs import result_key
from framefleet.core.storage import Storage
from framefleet.core.tables import Rows
from framefleet.dataset import Compacted, Fill, compact
from framefleet.state.jobs import JobStore

log = logging.getLogger(__name__)

READERS = 16
"""Result documents read in parallel for items whose part is missing."""


def compact_job(
    jobs: JobStore, job_id: str, dst: Storage, failures: Sequence[tuple[str, dict[str, Any]]]
) -> Compacted:
    """Compact the results tables of ``job_id`` under ``dst``, adding what they lack.

    Raises:
        StorageError: the tables could not be read or written (see `compact`).
    """
    return compact(dst, _gaps(jobs, job_id, dst, failures))


def _gaps(
    jobs: JobStore, job_id: str, dst: Storage, failures: Sequence[tuple[str, dict[str, Any]]]
) -> Fill:
    def fill(con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
        # The oldest possible stamp: a row added here never wins over one a worker wrote.
        rows = Rows(f"{job_id}-state", job_id)
        for item, reason in failures:
            rows.add_failure(
                item,
                str(reason.get("error", "")),
                str(reason.get("message", "")),
                str(reason.get("worker", "")),
            )
        try:
            done = pa.table({"item": pa.array(list(jobs.scan_done(job_id)), pa.string())})
        except JobItemsExpired:  # its per-item state expired: only the failures are known
            return rows.tables(written_at=0)
        con.register("state_done", done)
        missing = [
            str(item)
            for (item,) in con.execute(
                "SELECT item FROM state_done WHERE item NOT IN (SELECT item FROM raw_images)"
            ).fetchall()
        ]
        con.unregister("state_done")
        if missing:
            log.warning(
                "job %s: %d item(s) without rows; adding them from their documents",
                job_id,
                len(missing),
            )
        with ThreadPoolExecutor(READERS) as pool:
            for item, document in zip(
                missing, pool.map(lambda i: _document(dst, i), missing), strict=True
            ):
                if document is not None:
                    rows.add_outcome(item, document, read=dst.read_bytes)
        return rows.tables(written_at=0)

    return fill


def _document(dst: Storage, item: str) -> Document | None:
    try:
        return read_document(dst.read_bytes(result_key(item)))
    except (PipelineError, ValueError) as exc:
        # A video's segment units are counted too and have no document of their own.
        if "#" not in item:
            log.warning("%s: no result document to add to the tables: %s", item, exc)
        return None
