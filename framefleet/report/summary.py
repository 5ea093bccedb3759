"""The job report written next to the outputs when a job completes.

``_framefleet/summary.json`` is the job record (counts, timings, classes); ``failures.jsonl`` has
one JSON object per failed item: ``{"item", "error", "message", "worker"}``, sorted by item. A
finished job's results tables are compacted (`framefleet.report.compaction`).
Whoever completes the job writes them (exactly one caller learns that it did); rewriting them is
harmless, so `framefleet status --write-report` can redo it. A job stopped early (`stop_job`: a
cancel, or a reason to give up on the whole job) gets the same report, at once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from framefleet.core.errors import JobFinished, StorageError
from framefleet.core.jobrecord import JobRecord, JobStatus
from framefleet.core.outputs import parts_prefix, report_key
from framefleet.core.storage import Storage, open_storage
from framefleet.state.jobs import JobStore

log = logging.getLogger(__name__)


def write_report(jobs: JobStore, job_id: str) -> JobRecord:
    """Write the summary and failure list of ``job_id`` under its output root; return the record.

    A finished job's results tables are compacted first, and its detections per class are then
    the tables' (the same counts as the job state's, read from the rows themselves)."""
    record = jobs.get(job_id)
    dst = open_storage(record.output_uri)
    failures = sorted(jobs.failures(job_id))
    lines = "".join(json.dumps({"item": item, **reason}) + "\n" for item, reason in failures)
    dst.write_bytes(report_key("failures.jsonl"), lines.encode())
    if record.finished and record.videos:
        delete_scratch(dst, job_id)
    if record.finished:
        # Imported here: DuckDB and Arrow load only in the process that ends a job, not in
        # every producer command that imports the report.
        from framefleet.report.compaction import compact_job

        try:
            compacted = compact_job(jobs, job_id, dst, failures)
        except Exception as exc:  # the parts stay readable as they are; only compaction waits
            log.error(
                "job %s: results tables under %s not compacted: %s; the parts are queryable "
                "as they are; compact them with `framefleet status %s --write-report`",
                job_id,
                dst.uri,
                exc,
                job_id,
            )
        else:
            if compacted.classes != record.classes:
                log.warning(
                    "job %s: the tables count %s per class, the job state %s",
                    job_id,
                    compacted.classes,
                    record.classes,
                )
            record = replace(record, classes=compacted.classes)
    dst.write_bytes(report_key("summary.json"), json.dumps(record.to_json(), indent=2).encode())
    return record


def delete_scratch(dst: Storage, job_id: str) -> int:
    """Delete the segment parts that failed or stopped videos of ``job_id`` left behind (a merged
    video's parts are gone already); return how many. Best effort: a failure is logged, the
    report stands."""
    deleted = 0
    try:
        for obj in dst.list(parts_prefix(job_id)):
            dst.delete(obj.key)
            deleted += 1
    except StorageError as exc:
        log.warning("job %s: segment parts under %s not deleted: %s", job_id, dst.uri, exc)
    return deleted


def stop_job(
    jobs: JobStore, job_id: str, status: JobStatus = JobStatus.CANCELLED, error: str = ""
) -> JobRecord:
    """Stop a job that has not ended (see `JobStore.stop`) and write its final report.

    Every way of ending a job early (`framefleet cancel`, a job given up on) goes through here,
    so a stopped job always has exact, frozen counts (done, failed, cancelled) and its summary.

    Raises:
        JobFinished: the job had already ended; it is left as it was.
        JobNotFound: no such job.
        StorageError: the job is stopped, but its report could not be written.
    """
    if not jobs.stop(job_id, status, error):
        record = jobs.get(job_id)
        raise JobFinished(
            f"job {job_id} already ended ({record.status.value}: {record.done} done, "
            f"{record.failed} failed, {record.cancelled} cancelled); a finished job is final, "
            "there is nothing to cancel"
        )
    return write_report(jobs, job_id)
