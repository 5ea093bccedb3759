"""Run a job's failed items again: `framefleet retry JOB`.

The failed items go back to pending in the job state (one script, `JobControl.reopen`), the job
is running again, and the items are enqueued as new messages; items that succeeded are not
touched. Their outcomes are recorded on the same job, so its counts stay exact and the report is
written again when the last of them is recorded.
"""

from __future__ import annotations

from celery import Celery

from framefleet.core.errors import ConfigError
from framefleet.core.jobrecord import JobStatus
from framefleet.core.jobspec import JobSpec
from framefleet.core.settings import Settings
from framefleet.queue import send_job
from framefleet.state.control import JobControl
from framefleet.state.jobs import JobStore


def retry_failed(settings: Settings, app: Celery, jobs: JobStore, job_id: str) -> list[str]:
    """Enqueue the failed items of ``job_id`` again; the items (empty: nothing to retry).

    Raises:
        JobNotFound: no such job.
        ConfigError: the job was cancelled or stopped early: its unlisted or dropped items have
            no record to retry from; submit it again (complete outputs are skipped).
        JobItemsExpired: its failures expired from Redis (FRAMEFLEET_JOB_TTL_DAYS after it ended).
        JobDecodeError: the job's stored spec is not one this version reads.
        BrokerError: Redis is unreachable.
    """
    record = jobs.get(job_id)
    if record.status in (JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.LISTING):
        raise ConfigError(
            f"job {job_id} is {record.status.value}"
            + (f" ({record.error})" if record.error else "")
            + "; its unprocessed items have no outcome to retry. Submit the same input to the "
            "same output again: items whose outputs are complete are skipped"
        )
    spec = JobSpec.of_record(record)  # before reopening: a spec it cannot read changes nothing
    jobs.require_items(job_id)
    items = JobControl(jobs).reopen(job_id)
    if not items:
        return []
    # As submitted: a video comes back with its segment length and sampling, images with
    # their batch size and engine (jobs from before the spec had a version: their defaults).
    for message, _ in spec.messages(job_id, items):
        send_job(app, message)
    return items
