"""Job state and per-item outcomes, in Redis, with exact counts.

One place holds the truth about a job::

    {prefix}:job:{id}          hash   parameters, state, total, listed flag, timestamps, frames
    {prefix}:job:{id}:done     set    items that succeeded (a redelivered item is counted once)
    {prefix}:job:{id}:failed   hash   item -> JSON reason, for items that finally failed
    {prefix}:job:{id}:classes  hash   class name -> detections, summed over newly done items
    {prefix}:job:{id}:finished list   one token once the job is finished; waiters block on it
    {prefix}:jobs              zset   job ids by creation time

Outcomes are recorded by one Lua script, so "count once" and "the job is complete" are decided
atomically: exactly one caller learns that it completed the job and writes its report.

Retention: the script that ends a job (complete, stop, the failure budget) freezes its counts into
the job hash (``n_done``, ``n_failed``) and gives its per-item keys (done, failed, counted,
retrying, crashes, videos and their segments, the follow sets) the job's ``item_ttl_s``
(FRAMEFLEET_JOB_TTL_DAYS, written at creation); the hash, classes and ``:finished`` stay, so
`jobs` and `status` still show the job. Reopening it (`framefleet retry`) keeps them again.
Keys are built inside these scripts, so this needs a single Redis (not a cluster), like leases.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis

from framefleet.core import defaults, redisconn
from framefleet.core.errors import BrokerError, JobItemsExpired, JobNotFound
from framefleet.core.jobrecord import JobRecord, JobStatus, VideoProgress
from framefleet.core.outputs import report_key
from framefleet.core.redisconn import describe as _describe
from framefleet.core.storage import join_uri

MAX_VIDEOS = 1000
"""Videos whose progress a job snapshot carries (the first planned)."""


# Per-item keys of a job (suffixes of {prefix}:job:{id}), plus each video's two keys: what
# retention expires when a job ends and keeps again when it is reopened.
_PER_ITEM = """
local PER_ITEM = {'done', 'failed', 'counted', 'retrying', 'crashes', 'videos',
  'follow:seen', 'follow:unsent', 'follow:arrived', 'follow:redo', 'follow:lag'}
local function per_item_keys(job)
  local keys = {}
  for _, item in ipairs(redis.call('ZRANGE', job .. ':videos', 0, -1)) do
    table.insert(keys, job .. ':video:' .. item)
    table.insert(keys, job .. ':video:' .. item .. ':done')
  end
  for _, suffix in ipairs(PER_ITEM) do table.insert(keys, job .. ':' .. suffix) end
  return keys
end
"""

# Called by every script that ends a job: counts freeze into the hash, per-item keys expire.
_RETIRE = (
    _PER_ITEM
    + """
local function retire(job, now)
  redis.call('HSET', job, 'n_done', redis.call('SCARD', job .. ':done'),
    'n_failed', redis.call('HLEN', job .. ':failed'))
  local ttl = tonumber(redis.call('HGET', job, 'item_ttl_s') or '0') or 0
  if ttl <= 0 then return end
  for _, key in ipairs(per_item_keys(job)) do redis.call('EXPIRE', key, ttl) end
  redis.call('HSET', job, 'items_expire_at', tonumber(now) + ttl)
end
"""
)

# Called when an ended job runs again (retry): its per-item keys are kept until it ends again.
_KEEP = (
    _PER_ITEM
    + """
local function keep(job)
  for _, key in ipairs(per_item_keys(job)) do redis.call('PERSIST', key) end
  redis.call('HDEL', job, 'items_expire_at', 'n_done', 'n_failed')
end
"""
)

FINISHED_TOKEN = "finished"
"""What the ``:finished`` list holds once the job is finished (done, failed or cancelled)."""

# Decides "complete" and flips the state once; shared by both scripts below. The token it
# pushes wakes every `wait_for_change` at once, instead of each waiter polling.
_COMPLETE = (
    _RETIRE
    + """
local function complete(job, done, failed, now, finished)
  if redis.call('HGET', job, 'listed') ~= '1' then return 0 end
  local total = tonumber(redis.call('HGET', job, 'total') or '0')
  if redis.call('SCARD', done) + redis.call('HLEN', failed) < total then return 0 end
  if redis.call('HSETNX', job, 'finished_at', now) == 0 then return 0 end
  if redis.call('HGET', job, 'status') == 'running' then
    redis.call('HSET', job, 'status', 'done')
  end
  redis.call('RPUSH', finished, 'finished')
  retire(job, now)
  return 1
end
"""
)

_RECORD = (
    _COMPLETE
    + """
-- KEYS: job done failed classes finished   ARGV: item ok reason classes_json now frames
-- An outcome ends the item's starts (LeaseStore.begin_item): one round trip, not two.
redis.call('HDEL', KEYS[1] .. ':crashes', ARGV[1])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
-- A stopped job is final: outcomes of work still in flight when it stopped are not counted.
if status == 'cancelled' or status == 'failed' then return 0 end
-- A done job whose per-item keys expired takes no late outcome (it would recreate them, forever).
local expire_at = tonumber(redis.call('HGET', KEYS[1], 'items_expire_at') or '')
if expire_at and tonumber(ARGV[5]) >= expire_at then return 0 end
if ARGV[2] == '1' then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
    redis.call('HDEL', KEYS[3], ARGV[1])
    redis.call('HINCRBY', KEYS[1], 'frames', ARGV[6])
    if ARGV[4] ~= '' then
      for name, n in pairs(cjson.decode(ARGV[4])) do redis.call('HINCRBY', KEYS[4], name, n) end
    end
  end
elseif redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
end
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[5])
if status == 'done' then
  -- A late outcome of an ended job (a redelivery): its frozen counts and expiry follow.
  redis.call('HSET', KEYS[1], 'n_done', redis.call('SCARD', KEYS[2]),
    'n_failed', redis.call('HLEN', KEYS[3]))
  if expire_at then
    redis.call('EXPIREAT', KEYS[2], math.ceil(expire_at))
    redis.call('EXPIREAT', KEYS[3], math.ceil(expire_at))
  end
end
return complete(KEYS[1], KEYS[2], KEYS[3], ARGV[5], KEYS[5])
"""
)

_FINISH_LISTING = (
    _COMPLETE
    + """
-- KEYS: job done failed finished   ARGV: now
redis.call('HSET', KEYS[1], 'listed', '1')
if redis.call('HGET', KEYS[1], 'status') == 'listing' then
  redis.call('HSET', KEYS[1], 'status', 'running')
end
return complete(KEYS[1], KEYS[2], KEYS[3], ARGV[1], KEYS[4])
"""
)


# KEYS: job counted   ARGV: message_no count
_ADD_ITEMS = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'total', ARGV[2])
end
"""


# Stops a job that has not ended; 1 if this call stopped it, 0 if it had ended, -1 if no such job.
_STOP = (
    _RETIRE
    + """
-- KEYS: job finished   ARGV: status error now
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'done' or status == 'failed' or status == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished_at', ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[2]) end
redis.call('RPUSH', KEYS[2], 'finished')  -- wakes every wait_for_change
retire(KEYS[1], ARGV[3])
return 1
"""
)


class JobStore:
    """Reads and writes job state in Redis.

    Args:
        client: a redis-py client (decode_responses=True).
        prefix: namespace of every key.
        reconnect_s: how long a call waits for an unreachable Redis (retrying with backoff, one
            log line per retry) before raising `BrokerError`; 0 fails at once.
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
        client: redis.Redis,
        prefix: str = defaults.KEY_PREFIX,
        reconnect_s: float = 0.0,
        item_ttl_s: int = round(defaults.JOB_TTL_DAYS * 86400),
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.reconnect_s = reconnect_s
        self.item_ttl_s = item_ttl_s
        self._record = client.register_script(_RECORD)
        self._finish = client.register_script(_FINISH_LISTING)
        self._add = client.register_script(_ADD_ITEMS)
        self._stop = client.register_script(_STOP)

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
        store = cls(redisconn.connect(url), prefix, reconnect_s, item_ttl_s)
        if ping:
            store._call(store.client.ping)
        return store

    def keys(self, job_id: str) -> list[str]:
        """The job's Redis keys: hash, done set, failed hash, classes hash (for scripts that
        record outcomes together with other state, such as `VideoStore`)."""
        return self._keys(job_id)

    def _keys(self, job_id: str) -> list[str]:
        base = f"{self.prefix}:job:{job_id}"
        return [base, f"{base}:done", f"{base}:failed", f"{base}:classes"]

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, riding out a Redis restart for ``reconnect_s`` seconds.
        Calls are repeated whole, so pipelines are built inside ``fn``."""
        return redisconn.call(lambda: fn(*args, **kwargs), self.client, self.reconnect_s)

    def create(
        self, input_uri: str, output_uri: str, model: str, params: Mapping[str, Any] | None = None
    ) -> str:
        """Record a new job in the ``listing`` state and return its id."""
        now = time.time()
        job_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(3)
        job_key = self._keys(job_id)[0]

        def write() -> Any:
            pipe = self.client.pipeline()
            pipe.hset(
                job_key,
                mapping={
                    "job_id": job_id,
                    "input": input_uri,
                    "output": output_uri,
                    "model": model,
                    "status": JobStatus.LISTING.value,
                    "total": 0,
                    "listed": 0,
                    "created_at": now,
                    "params": json.dumps(dict(params or {})),
                    "item_ttl_s": self.item_ttl_s,
                },
            )
            pipe.zadd(f"{self.prefix}:jobs", {job_id: now})
            return pipe.execute()

        self._call(write)
        return job_id

    def add_items(self, job_id: str, count: int, message_no: int | None = None) -> None:
        """Count ``count`` more items into the job's total (called as the producer enqueues).

        With ``message_no`` the count is added once per message number, so a call repeated after
        a dropped connection (Redis restart) cannot count a message twice.
        """
        if message_no is None:
            self._call(self.client.hincrby, self._keys(job_id)[0], "total", count)
            return
        job = self._keys(job_id)[0]
        self._call(self._add, keys=[job, f"{job}:counted"], args=[message_no, count])

    def finish_listing(self, job_id: str) -> bool:
        """Mark the listing complete; True if every item already has an outcome (job complete)."""
        keys = [*self._keys(job_id)[:3], self._finished_key(job_id)]
        return bool(self._call(self._finish, keys=keys, args=[time.time()]))

    def _finished_key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:finished"

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
        result = self._call(
            self._stop,
            keys=[self._keys(job_id)[0], self._finished_key(job_id)],
            args=[status.value, error, time.time()],
        )
        if result == -1:
            raise JobNotFound(f"no job {job_id!r} in Redis at {_describe(self.client)}")
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
        token stays for every other waiter), which the script that completes the job pushes
        to: a display loop that calls this between redraws returns within a round trip of the
        completion, with no polling.

        Example:
            >>> while not (record := store.get(job_id)).finished:
            ...     draw(record)
            ...     store.wait_for_change(job_id, timeout_s=0.5)
        """
        key = self._finished_key(job_id)
        # Redis takes sub-second timeouts; 0 would block forever, so keep at least 10 ms.
        timeout = max(0.01, min(timeout_s, 20.0))  # below the client's 30 s socket timeout
        token = self._call(self.client.blmove, key, key, timeout, "RIGHT", "LEFT")
        return token is not None

    def status(self, job_id: str) -> JobStatus:
        """The job's current status (one round trip; workers check it per task)."""
        raw = self._call(self.client.hget, self._keys(job_id)[0], "status")
        if raw is None:
            raise JobNotFound(f"no job {job_id!r} in Redis at {_describe(self.client)}")
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
        """Record the final outcome of ``item``; True if this call completed the job. Its count
        of starts without an outcome (`LeaseStore.begin_item`) is cleared in the same step.

        A success is counted once however often it is recorded, and replaces an earlier failure;
        a failure never replaces a success. ``frames`` is how many images the item was (1 for an
        image, the frames processed for a video); it is summed over successes, for images/s.

        Raises:
            JobNotFound: the job does not exist (deleted, or another Redis).
        """
        result = self._call(
            self._record,
            keys=[*self._keys(job_id), self._finished_key(job_id)],
            args=[
                item,
                "1" if ok else "0",
                json.dumps(dict(reason or {})),
                json.dumps(dict(classes)) if classes else "",
                time.time(),
                frames,
            ],
        )
        if result == -1:
            raise JobNotFound(f"no job {job_id!r} in Redis at {_describe(self.client)}")
        return bool(result)

    def get(self, job_id: str) -> JobRecord:
        """A consistent snapshot of the job.

        Raises:
            JobNotFound: no such job.
        """
        job, done, failed, classes = self._keys(job_id)

        def read() -> Any:
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(job)
            pipe.scard(done)
            pipe.hlen(failed)
            pipe.hgetall(classes)
            return pipe.execute()

        raw, n_done, n_failed, class_counts = self._call(read)
        if not raw:
            raise JobNotFound(
                f"no job {job_id!r} in Redis at {_describe(self.client)}; "
                "list recent jobs with `framefleet jobs`"
            )
        status = JobStatus(raw["status"])
        if status in _ENDED and "n_done" in raw:
            # Frozen when it ended: the sets they count may have expired since (retention).
            n_done, n_failed = raw["n_done"], raw["n_failed"]
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
            started_at=_float(raw.get("started_at")),
            finished_at=_float(raw.get("finished_at")),
            error=raw.get("error", ""),
            params=json.loads(raw.get("params", "{}")),
            frames=int(raw.get("frames", 0)),
            classes={
                k: int(v) for k, v in sorted(class_counts.items(), key=lambda kv: -int(kv[1]))
            },
            videos=self._videos(job_id),
            items_expire_at=_float(raw.get("items_expire_at")),
        )

    def _videos(self, job_id: str, limit: int = MAX_VIDEOS) -> tuple[VideoProgress, ...]:
        """Segment progress of the job's first ``limit`` videos, in plan order."""
        items = self._call(self.client.zrange, video_keys(self.prefix, job_id, "")[2], 0, limit - 1)
        if not items:
            return ()
        pipe = self.client.pipeline(transaction=False)
        for item in items:
            video, done, _ = video_keys(self.prefix, job_id, item)
            pipe.hgetall(video)
            pipe.scard(done)
        raw = self._call(pipe.execute)
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

    def failures(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(item, reason) of every failed item, streamed with HSCAN.

        Raises:
            JobItemsExpired: the job ended and its per-item state expired.
            BrokerError: Redis failed while streaming.
        """
        self.require_items(job_id)
        try:
            for item, reason in self.client.hscan_iter(self._keys(job_id)[2], count=500):
                yield item, json.loads(reason)
        except redis.RedisError as exc:
            raise BrokerError(f"Redis at {_describe(self.client)} failed: {exc}") from exc

    def sample_done(self, job_id: str, count: int) -> list[str]:
        """Up to ``count`` distinct succeeded items, chosen at random (for reports).

        Raises:
            JobItemsExpired: the job ended and its per-item state expired.
        """
        self.require_items(job_id)
        items = self._call(self.client.srandmember, self._keys(job_id)[1], count)
        return sorted(items or [])

    def scan_done(self, job_id: str) -> Iterator[str]:
        """Every succeeded item, streamed with SSCAN (order unspecified).

        Raises:
            JobItemsExpired: the job ended and its per-item state expired.
            BrokerError: Redis failed while streaming.
        """
        self.require_items(job_id)
        try:
            yield from self.client.sscan_iter(self._keys(job_id)[1], count=1000)
        except redis.RedisError as exc:
            raise BrokerError(f"Redis at {_describe(self.client)} failed: {exc}") from exc

    def require_items(self, job_id: str) -> None:
        """Check that the job's per-item state (done items, failures) is still in Redis.

        Raises:
            JobItemsExpired: the job ended more than its retention ago; the message says what
                is left (counts, the report in the output) and how to run the job again.
        """
        job = self._keys(job_id)[0]
        raw = self._call(self.client.hmget, job, ["items_expire_at", "output", "finished_at"])
        expire_at, output, finished_at = (_float(raw[0]), raw[1], _float(raw[2]))
        if expire_at is None or time.time() < expire_at:
            return
        report = join_uri(output or "", report_key("failures.jsonl"))
        raise JobItemsExpired(
            f"job {job_id} ended {_utc(finished_at)} and its per-item state (done items, "
            f"failures) expired from Redis at {_describe(self.client)} on {_utc(expire_at)} "
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
        ids = self._call(self.client.zrange, f"{self.prefix}:jobs", 0, -1)

        def states() -> Any:
            pipe = self.client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self._keys(job_id)[0], ["status", "finished_at"])
            return pipe.execute()

        ended = [
            job_id
            for job_id, (status, finished_at) in zip(ids, self._call(states), strict=True)
            if status in _ENDED and (_float(finished_at) or 0.0) <= cutoff
        ]
        if not ended:
            return []
        wanted = set(ended)
        start = len(f"{self.prefix}:job:")

        def delete() -> None:
            # One pass over the job keys (videos add a key per item, so they are not listed).
            batch: list[str] = []
            for key in self.client.scan_iter(match=f"{self.prefix}:job:*", count=1000):
                if key[start:].split(":", 1)[0] in wanted:
                    batch.append(key)
                if len(batch) >= 500:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)
            self.client.zrem(f"{self.prefix}:jobs", *ended)

        self._call(delete)
        return ended

    def is_done(self, job_id: str, item: str) -> bool:
        """True if ``item`` already succeeded (lets a redelivered task skip finished work)."""
        return bool(self._call(self.client.sismember, self._keys(job_id)[1], item))

    def done_among(self, job_id: str, items: Sequence[str]) -> set[str]:
        """Which of ``items`` already succeeded, in one round trip (a redelivered message skips
        them)."""
        if not items:
            return set()
        flags = self._call(self.client.smismember, self._keys(job_id)[1], list(items))
        return {item for item, flag in zip(items, flags, strict=True) if flag}

    def recent(self, limit: int = 20) -> list[JobRecord]:
        """The ``limit`` most recently created jobs, newest first."""
        ids = self._call(self.client.zrevrange, f"{self.prefix}:jobs", 0, limit - 1)
        records = []
        for job_id in ids:
            try:
                records.append(self.get(job_id))
            except JobNotFound:
                continue
        return records


def video_keys(prefix: str, job_id: str, item: str) -> tuple[str, str, str]:
    """Keys of video ``item``'s segment state: hash, done-segments set, and the job's video
    index (see `framefleet.core.videostate`)."""
    base = f"{prefix}:job:{job_id}"
    return f"{base}:video:{item}", f"{base}:video:{item}:done", f"{base}:videos"


_ENDED = {JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED}


def _utc(epoch_s: float | None) -> str:
    return "?" if epoch_s is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch_s))


def _float(raw: str | None) -> float | None:
    return None if raw in (None, "") else float(raw)
