"""Jobs and their per-item outcomes, with exact counts (keys: `framefleet.state.keys`).

Outcomes are recorded by one script per message (``lua/job_record.lua``), so "count once", "the
job is complete" and "the failure budget is spent" are decided atomically: exactly one caller
learns that it completed the job and writes its report. The script that ends a job (complete,
stop, the failure budget: ``end_job`` in ``lua/lib/job.lua``) freezes its counts into the job hash
and gives its per-item keys the job's ``item_ttl_s`` (retention); reopening it keeps them again.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from framefleet.core import defaults
from framefleet.core.errors import JobNotFound
from framefleet.core.jobrecord import JobRecord, JobStatus, VideoProgress
from framefleet.state.connection import Connection
from framefleet.state.jobitems import JobItems, utc_float
from framefleet.state.keys import Keys

MAX_VIDEOS = 1000
"""Videos whose progress a job snapshot carries (the first planned)."""

LAG_WINDOW = 10_000
"""Arrival-to-outcome lags kept per following job (the most recent), for `status`'s p50/p95."""

ENDED = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})
"""Statuses a job never leaves (but through `framefleet retry`)."""


@dataclass(frozen=True)
class Outcome:
    """The final outcome of one item, as the job records it.

    Attributes:
        item: the item's key (an image, or a video).
        ok: it succeeded; else ``reason`` says why it failed.
        reason: JSON-ready failure reason (``error``, ``message``, ``worker``).
        classes: detections per class name, summed into the job once per item.
        frames: images the item was (1 for an image, the frames processed for a video).
    """

    item: str
    ok: bool
    reason: Mapping[str, Any] = field(default_factory=dict)
    classes: Mapping[str, int] = field(default_factory=dict)
    frames: int = 1

    def to_json(self) -> dict[str, Any]:
        """What ``job_record.lua`` reads: a success's classes and frames, a failure's reason."""
        if not self.ok:
            return {"item": self.item, "ok": False, "reason": json.dumps(dict(self.reason))}
        out: dict[str, Any] = {"item": self.item, "ok": True, "frames": self.frames}
        if self.classes:
            out["classes"] = dict(self.classes)
        return out


@dataclass(frozen=True)
class Recorded:
    """What recording a message's outcomes decided: it completed the job (the caller writes the
    report), or it stopped the job on its failure budget (the report is due too)."""

    completed: bool = False
    stopped: bool = False


class JobStore(JobItems):
    """Reads and writes jobs in Redis.

    Args:
        conn: the connection (its ``reconnect_s`` is how long calls ride out a restart).
        keys: the key layout.
        item_ttl_s: seconds the per-item state of a job this store creates stays in Redis after
            the job ends (`Settings.job_ttl_s`); 0 keeps it forever.

    Example:
        >>> store = JobStore.from_url("redis://127.0.0.1:6379/0")
        >>> job_id = store.create("s3://in/", "s3://out/", "yolox-nano")
        >>> store.add_items(job_id, 2); store.finish_listing(job_id)
        >>> store.record(job_id, "a.jpg", ok=True)
    """

    def __init__(
        self,
        conn: Connection,
        keys: Keys | None = None,
        item_ttl_s: int = round(defaults.JOB_TTL_DAYS * 86400),
    ) -> None:
        self.conn = conn
        self.keys = keys or Keys()
        self.item_ttl_s = item_ttl_s

    @property
    def client(self) -> Any:
        """The redis-py client (for tests and tools that read keys directly)."""
        return self.conn.client

    @property
    def reconnect_s(self) -> float:
        """How long calls ride out an unreachable Redis (shared by every store on ``conn``)."""
        return self.conn.reconnect_s

    @reconnect_s.setter
    def reconnect_s(self, seconds: float) -> None:
        self.conn.reconnect_s = seconds

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self.keys.prefix

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str = defaults.KEY_PREFIX,
        reconnect_s: float = 0.0,
        ping: bool = True,
        item_ttl_s: int = round(defaults.JOB_TTL_DAYS * 86400),
    ) -> JobStore:
        """A store on the Redis at ``url`` (checked with a PING unless ``ping`` is False).

        Raises:
            BrokerError: Redis is unreachable (for ``reconnect_s``); the message names the URL.
        """
        store = cls(Connection.from_url(url, reconnect_s), Keys(prefix), item_ttl_s)
        if ping:
            store.conn.call(store.conn.client.ping)
        return store

    def create(
        self, input_uri: str, output_uri: str, model: str, params: Mapping[str, Any] | None = None
    ) -> str:
        """Record a new job in the ``listing`` state and return its id."""
        now = time.time()
        job_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(3)
        fields = {
            "job_id": job_id,
            "input": input_uri,
            "output": output_uri,
            "model": model,
            "status": JobStatus.LISTING.value,
            "total": 0,
            "done_count": 0,
            "listed": 0,
            "created_at": now,
            "params": json.dumps(dict(params or {})),
            "item_ttl_s": self.item_ttl_s,
        }
        self.conn.pipeline(
            lambda pipe: pipe.hset(self.keys.job(job_id), mapping=fields).zadd(
                self.keys.jobs, {job_id: now}
            )
        )
        return job_id

    def add_items(self, job_id: str, count: int, message_no: int | None = None) -> None:
        """Count ``count`` more items into the job's total (called as the producer enqueues).

        With ``message_no`` the count is added once per message number, so a call repeated after
        a dropped connection (Redis restart) cannot count a message twice.
        """
        if message_no is None:
            self.conn.call(self.conn.client.hincrby, self.keys.job(job_id), "total", count)
            return
        self.add_messages(job_id, {message_no: count})

    def add_messages(self, job_id: str, counts: Mapping[int, int]) -> None:
        """Count several messages' items (message number -> items) in one call, each once."""
        if counts:
            args = [value for pair in counts.items() for value in pair]
            self.conn.script("job_add_items", [self.keys.job(job_id)], args)

    def finish_listing(self, job_id: str) -> bool:
        """Mark the listing complete; True if every item already has an outcome (job complete)."""
        return bool(self.conn.script("job_finish_listing", [self.keys.job(job_id)], [time.time()]))

    def stop(self, job_id: str, status: JobStatus, error: str = "") -> bool:
        """End a job that has not ended, as ``status`` (cancelled or failed), at once.

        Its counts freeze: outcomes recorded later (work in flight) are not counted, workers
        skip its remaining messages, and the items without an outcome count as `cancelled`.
        A job that already ended (done, failed, cancelled) is final and left as it is.

        Returns:
            True if this call stopped the job; False if it had already ended.

        Raises:
            JobNotFound: no such job.
        """
        args = [status.value, error, time.time()]
        result = self.conn.script("job_stop", [self.keys.job(job_id)], args)
        if result == -1:
            raise JobNotFound(f"no job {job_id!r} in Redis at {self.conn.describe()}")
        return bool(result)

    def fail(self, job_id: str, error: str) -> None:
        """Mark the whole job failed (e.g. its input could not be listed), unless it ended."""
        self.stop(job_id, JobStatus.FAILED, error)

    def cancel(self, job_id: str) -> bool:
        """Cancel the job (see `stop`); True if this call cancelled it."""
        return self.stop(job_id, JobStatus.CANCELLED)

    def wait_for_change(self, job_id: str, timeout_s: float) -> bool:
        """Block until the job is finished (done, failed or cancelled) or ``timeout_s`` passes;
        True if it is finished.

        Blocks in Redis on the job's ``:finished`` list (BLMOVE from the list to itself, so the
        token stays for every other waiter), which the script that ends the job pushes to: a
        display loop that calls this between redraws returns within a round trip of the end.

        Example:
            >>> while not (record := store.get(job_id)).finished:
            ...     draw(record)
            ...     store.wait_for_change(job_id, timeout_s=0.5)
        """
        key = self.keys.job_part(job_id, "finished")
        # Redis takes sub-second timeouts; 0 would block forever, so keep at least 10 ms.
        timeout = max(0.01, min(timeout_s, 20.0))  # below the client's 30 s socket timeout
        token = self.conn.call(self.conn.client.blmove, key, key, timeout, "RIGHT", "LEFT")
        return token is not None

    def status(self, job_id: str) -> JobStatus:
        """The job's current status."""
        raw = self.conn.call(self.conn.client.hget, self.keys.job(job_id), "status")
        if raw is None:
            raise JobNotFound(f"no job {job_id!r} in Redis at {self.conn.describe()}")
        return JobStatus(raw)

    def record(
        self,
        job_id: str,
        item: str,
        ok: bool,
        reason: Mapping[str, Any] | None = None,
        classes: Mapping[str, int] | None = None,
        frames: int = 1,
    ) -> bool:
        """Record the final outcome of one item (see `record_many`); True if this call completed
        the job or stopped it on its failure budget."""
        outcome = Outcome(item, ok, reason or {}, classes or {}, frames)
        decided = self.record_many(job_id, [outcome])
        return decided.completed or decided.stopped

    def record_many(self, job_id: str, outcomes: Sequence[Outcome], lease_id: str = "") -> Recorded:
        """Record the final outcomes of a message's items and release its lease, in one call.

        A success is counted once however often it is recorded, and replaces an earlier failure;
        a failure never replaces a success. Frames and classes are summed over new successes.
        An outcome clears the item's count of starts that died (`framefleet.state.leases`); in a
        following job it notes the item's arrival-to-outcome lag.

        Raises:
            JobNotFound: the job does not exist (deleted, or another Redis).
        """
        keys = [self.keys.job(job_id), self.keys.leases, self.keys.lease(lease_id)]
        body = json.dumps([outcome.to_json() for outcome in outcomes])
        code, stopped = self.conn.script(
            "job_record", keys, [time.time(), lease_id, LAG_WINDOW, body]
        )
        if code == -1:
            raise JobNotFound(f"no job {job_id!r} in Redis at {self.conn.describe()}")
        return Recorded(completed=code == 1, stopped=stopped == 1)

    def get(self, job_id: str) -> JobRecord:
        """A consistent snapshot of the job.

        Raises:
            JobNotFound: no such job.
        """
        job = self.keys.job(job_id)
        raw, n_done, n_failed = self.conn.pipeline(
            lambda pipe: (
                pipe.hgetall(job)
                .scard(self.keys.job_part(job_id, "done"))
                .hlen(self.keys.job_part(job_id, "failed"))
            )
        )
        if not raw:
            raise JobNotFound(
                f"no job {job_id!r} in Redis at {self.conn.describe()}; "
                "list recent jobs with `framefleet jobs`"
            )
        status = JobStatus(raw["status"])
        if status in ENDED and "n_done" in raw:
            # Frozen when it ended: the sets they count may have expired since (retention).
            n_done, n_failed = raw["n_done"], raw["n_failed"]
        classes: dict[str, int] = json.loads(raw.get("classes") or "{}")
        return JobRecord(
            job_id=raw["job_id"],
            input_uri=raw["input"],
            output_uri=raw["output"],
            model=raw["model"],
            status=status,
            total=int(raw.get("total", 0)),
            done=int(n_done),
            failed=int(n_failed),
            listed=raw.get("listed") == "1",
            created_at=float(raw["created_at"]),
            started_at=utc_float(raw.get("started_at")),
            finished_at=utc_float(raw.get("finished_at")),
            error=raw.get("error", ""),
            params=json.loads(raw.get("params", "{}")),
            frames=int(raw.get("frames", 0)),
            classes={k: int(v) for k, v in sorted(classes.items(), key=lambda kv: -int(kv[1]))},
            videos=self._videos(job_id),
            items_expire_at=utc_float(raw.get("items_expire_at")),
        )

    def _videos(self, job_id: str, limit: int = MAX_VIDEOS) -> tuple[VideoProgress, ...]:
        """Segment progress of the job's first ``limit`` videos, in plan order."""
        index = self.keys.job_part(job_id, "videos")
        items = self.conn.call(self.conn.client.zrange, index, 0, limit - 1)
        if not items:
            return ()

        def read(pipe: Any) -> None:
            for item in items:
                pipe.hgetall(self.keys.video(job_id, item))
                pipe.scard(self.keys.video_done(job_id, item))

        raw = self.conn.pipeline(read, transaction=False)
        return tuple(
            VideoProgress(
                item=item,
                segments_done=int(n_done),
                segments_total=int(info.get("segments", 0)),
                frames_done=int(info.get("frames_done", 0)),
                frames_total=int(info["frames"]) if "frames" in info else None,
                state=info.get("state", ""),
                error=info.get("error", ""),
            )
            for item, info, n_done in zip(items, raw[::2], raw[1::2], strict=True)
        )

    def recent(self, limit: int = 20) -> list[JobRecord]:
        """The ``limit`` most recently created jobs, newest first."""
        records = []
        for job_id in self.recent_ids(limit):
            try:
                records.append(self.get(job_id))
            except JobNotFound:
                continue
        return records

    def recent_ids(self, limit: int) -> list[str]:
        """Ids of the ``limit`` most recently created jobs, newest first."""
        return [
            str(i) for i in self.conn.call(self.conn.client.zrevrange, self.keys.jobs, 0, limit - 1)
        ]

    def fields(self, job_ids: Sequence[str], *names: str) -> list[list[str | None]]:
        """Fields ``names`` of each job's hash, in one round trip (None where missing)."""

        def read(pipe: Any) -> None:
            for job_id in job_ids:
                pipe.hmget(self.keys.job(job_id), list(names))

        return self.conn.pipeline(read, transaction=False)

    def broker_lengths(self, queues: Sequence[str]) -> list[int]:
        """Lengths of Celery's queue lists ``queues`` (kombu's keys), in one round trip."""

        def read(pipe: Any) -> None:
            for queue in queues:
                pipe.llen(queue)

        return [int(n) for n in self.conn.pipeline(read, transaction=False)]

    def broker_hash_size(self, key: str) -> int:
        """Fields of one of kombu's hashes (its ``unacked`` messages)."""
        return int(self.conn.call(self.conn.client.hlen, key))
