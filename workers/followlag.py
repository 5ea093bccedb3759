"""The arrival-to-outcome lag of the items of following jobs (`submit --follow`), as an observer.

Each item of a following job has its arrival time in the job's follow state; when the item gets
its outcome (done or failed), the lag is noted there for `status`'s p50 and p95. Jobs that do not
follow cost one EXISTS per job and process, remembered.
"""

from __future__ import annotations

from framefleet.core.followstate import FollowStore
from framefleet.core.messages import Message
from framefleet.inference.pipeline import ItemResult
from workers.observers import Observer, Outcome

REMEMBERED_JOBS = 1000
"""Jobs whose follow flag a process remembers (then it forgets them all and asks again)."""


class FollowLag(Observer):
    """Notes the lag of each item of a following job when it is recorded."""

    def __init__(self, follow: FollowStore) -> None:
        self.follow = follow
        self._followed: dict[str, bool] = {}

    def followed(self, job_id: str) -> bool:
        """True if ``job_id`` follows its input (asked once per job)."""
        known = self._followed.get(job_id)
        if known is None:
            if len(self._followed) >= REMEMBERED_JOBS:
                self._followed.clear()
            known = self._followed[job_id] = self.follow.is_followed(job_id)
        return known

    def on_item(self, job: Message, result: ItemResult, outcome: Outcome) -> None:
        if outcome != "retry" and self.followed(job.job_id):
            self.follow.record_lag(job.job_id, result.item)
