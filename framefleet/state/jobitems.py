"""Reads of a job's per-item state (done items, failures), retention checks and purging.

A mixin of `framefleet.state.jobs.JobStore`, kept apart so each module stays about one thing:
these read sets and hashes that retention may have expired, and say so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import redis

from framefleet.core.errors import BrokerError, JobItemsExpired
from framefleet.core.jobrecord import JobStatus
from framefleet.core.outputs import report_key
from framefleet.core.storage import join_uri
from framefleet.state.connection import Connection
from framefleet.state.keys import Keys

_ENDED = {JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}


class JobItems:
    """Per-item reads on the jobs of ``conn`` (see `JobStore`)."""

    conn: Connection
    keys: Keys

    def failures(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(item, reason) of every failed item, streamed with HSCAN.

        Raises:
            JobItemsExpired: the job ended and its per-item state expired.
            BrokerError: Redis failed while streaming.
        """
        self.require_items(job_id)
        key = self.keys.job_part(job_id, "failed")
        try:
            for item, reason in self.conn.client.hscan_iter(key, count=500):
                yield item, json.loads(reason)
        except redis.RedisError as exc:
            raise BrokerError(f"Redis at {self.conn.describe()} failed: {exc}") from exc

    def sample_done(self, job_id: str, count: int) -> list[str]:
        """Up to ``count`` distinct succeeded items, chosen at random (for reports).

        Raises:
            JobItemsExpired: the job ended and its per-item state expired.
        """
        self.require_items(job_id)
        key = self.keys.job_part(job_id, "done")
        return sorted(self.conn.call(self.conn.client.srandmember, key, count) or [])

    def scan_done(self, job_id: str) -> Iterator[str]:
        """Every succeeded item, streamed with SSCAN (order unspecified).

        Raises:
            JobItemsExpired: the job ended and its per-item state expired.
            BrokerError: Redis failed while streaming.
        """
        self.require_items(job_id)
        try:
            yield from self.conn.client.sscan_iter(self.keys.job_part(job_id, "done"), count=1000)
        except redis.RedisError as exc:
            raise BrokerError(f"Redis at {self.conn.describe()} failed: {exc}") from exc

    def require_items(self, job_id: str) -> None:
        """Check that the job's per-item state (done items, failures) is still in Redis.

        Raises:
            JobItemsExpired: the job ended more than its retention ago; the message says what
                is left (counts, the report in the output) and how to run the job again.
        """
        fields = ["items_expire_at", "output", "finished_at"]
        raw = self.conn.call(self.conn.client.hmget, self.keys.job(job_id), fields)
        expire_at, output, finished_at = (utc_float(raw[0]), raw[1], utc_float(raw[2]))
        if expire_at is None or time.time() < expire_at:
            return
        report = join_uri(output or "", report_key("failures.jsonl"))
        raise JobItemsExpired(
            f"job {job_id} ended {_utc(finished_at)} and its per-item state (done items, "
            f"failures) expired from Redis at {self.conn.describe()} on {_utc(expire_at)} "
            "(FRAMEFLEET_JOB_TTL_DAYS after a job ends). Its counts remain "
            f"(`framefleet status {job_id}`) and its failures were written to {report}. "
            "To run it again, submit the same input to the same output: items whose outputs "
            "are complete are skipped. Set FRAMEFLEET_JOB_TTL_DAYS=0 to keep per-item state"
        )

    def purge(self, older_than_s: float, now: float | None = None) -> list[str]:
        """Delete every key of the jobs that ended more than ``older_than_s`` ago, record
        included; jobs still running, listing or following are never touched.

        Returns:
            The ids of the jobs deleted, oldest first.
        """
        cutoff = (time.time() if now is None else now) - older_than_s
        client = self.conn.client
        ids = [str(i) for i in self.conn.call(client.zrange, self.keys.jobs, 0, -1)]

        def states(pipe: Any) -> None:
            for job_id in ids:
                pipe.hmget(self.keys.job(job_id), ["status", "finished_at"])

        rows = self.conn.pipeline(states, transaction=False)
        ended = [
            job_id
            for job_id, (status, finished_at) in zip(ids, rows, strict=True)
            if status in _ENDED and (utc_float(finished_at) or 0.0) <= cutoff
        ]
        if not ended:
            return []
        wanted = set(ended)
        start = len(self.keys.job_prefix)

        def delete() -> None:
            # One pass over the job keys (videos add a key per item, so they are not listed).
            batch: list[str] = []
            for key in client.scan_iter(match=f"{self.keys.job_prefix}*", count=1000):
                if key[start:].split(":", 1)[0] in wanted:
                    batch.append(key)
                if len(batch) >= 500:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
            client.zrem(self.keys.jobs, *ended)

        self.conn.call(delete)
        return ended


def _utc(epoch_s: float | None) -> str:
    return "?" if epoch_s is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch_s))


def utc_float(raw: str | None) -> float | None:
    """An epoch-seconds field of a hash: None where it is missing or empty."""
    return None if raw in (None, "") else float(raw)
