"""Reopening a job's failures (`framefleet retry`).

`JobControl.reopen` moves the failed items back to pending, sets the job running again and
forgets their crash counts (``lua/job_reopen.lua``); the caller then enqueues them. The failure
budget is checked where failures are recorded (``check_budget`` in ``lua/lib/job.lua``).
"""

from __future__ import annotations

from framefleet.state.jobs import JobStore


class JobControl:
    """Reopens jobs of ``jobs``.

    Example:
        >>> JobControl(JobStore.from_url(url)).reopen(job_id)
        ['b.jpg']
    """

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs

    def reopen(self, job_id: str) -> list[str]:
        """Move the failed items back to pending and set the job running; the items to enqueue.

        Raises:
            JobNotFound: no such job.
        """
        items = self.jobs.conn.script("job_reopen", [self.jobs.keys.job(job_id)], [])
        if items is None:
            self.jobs.get(job_id)  # raises JobNotFound with the usual message
        return sorted(items or [])
