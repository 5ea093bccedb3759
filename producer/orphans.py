"""Jobs left ``listing`` by a producer that died: a submission of the same input, output and
model closes them (their producer's beat: `framefleet.state.beats`)."""

from __future__ import annotations

import logging

from framefleet.core.errors import JobFinished
from framefleet.core.jobrecord import JobStatus
from framefleet.report.summary import stop_job
from framefleet.state.beats import producer_gone
from framefleet.state.jobs import JobStore

log = logging.getLogger(__name__)

ORPHAN_SCAN = 200
"""Recent jobs a submission looks through for orphans of its input, output and model."""


def close_orphans(jobs: JobStore, job_id: str) -> list[str]:
    """Cancel the orphans of job ``job_id``: jobs still ``listing`` with the same input, output
    and model whose producer is gone. Returns their ids.

    Their counts freeze and their summary is written (`stop_job`); workers skip their remaining
    messages; the outputs they completed count as done in the new job (resume).
    """
    record = jobs.get(job_id)
    ids = jobs.recent_ids(ORPHAN_SCAN)
    rows = jobs.fields(ids, "status", "input", "output", "model")
    closed = []
    for other, (status, input_uri, output_uri, model) in zip(ids, rows, strict=True):
        same = (input_uri, output_uri, model) == (record.input_uri, record.output_uri, record.model)
        if other == job_id or status != JobStatus.LISTING.value or not same:
            continue
        if not producer_gone(jobs, other):
            continue
        reason = (
            f"abandoned: its producer stopped while listing (killed, or its machine died); "
            f"superseded by job {job_id}, which resubmitted the same input, output and model"
        )
        try:
            stop_job(jobs, other, JobStatus.CANCELLED, reason)
        except JobFinished:
            continue
        except Exception as exc:  # closed, but its summary could not be written
            log.warning("job %s closed, but its summary was not written: %s", other, exc)
        log.warning("closed job %s: %s", other, reason)
        closed.append(other)
    return closed
