"""Steering a job after submission: stop it early when too many items fail, reopen its failures.

Both are single Lua scripts over the job-state keys of `framefleet.core.jobstate`, so a decision
is taken once however many workers race to it.

- Failure budget: a job submitted with ``max_failure_rate`` R (in its params) is stopped once at
  least ``min_failure_sample`` items have an outcome and more than R of them failed (a wrong model
  for the data). It becomes ``failed`` with the reason in ``error``; workers skip the rest of its
  messages (they take no lease on a job that is not running).
- Retry: `JobControl.reopen` moves the failed items back to pending, sets the job running again
  and forgets their crash counts; the caller then enqueues them.
"""

from __future__ import annotations

import time

from framefleet.core.jobstate import _KEEP, _RETIRE, JobStore

# KEYS: job done failed finished   ARGV: now
# 1: this call stopped the job; 0: within budget, no budget, or not running.
_CHECK_BUDGET = (
    _RETIRE
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' and status ~= 'listing' then return 0 end
local ok, params = pcall(cjson.decode, redis.call('HGET', KEYS[1], 'params') or '{}')
if not ok or type(params) ~= 'table' then return 0 end
local rate = tonumber(params['max_failure_rate'] or 1)
if rate == nil or rate >= 1 then return 0 end
local failed = redis.call('HLEN', KEYS[3])
local seen = failed + redis.call('SCARD', KEYS[2])
if seen < tonumber(params['min_failure_sample'] or 20) or failed <= rate * seen then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[1], 'error',
  string.format('stopped early: %d of %d items failed (%.0f%%), more than --max-failure-rate ' ..
  '%.0f%%; the rest of the job was dropped. Check the model and the input, then resubmit',
  failed, seen, 100 * failed / seen, 100 * rate))
redis.call('RPUSH', KEYS[4], 'finished')
retire(KEYS[1], ARGV[1])
return 1
"""
)

# KEYS: job done failed retrying crashes finished   ARGV: -
# Returns the items to enqueue again (failed ones, plus earlier retries that have no outcome yet).
_REOPEN = (
    _KEEP
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local items = redis.call('HKEYS', KEYS[3])
for _, old in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('SISMEMBER', KEYS[2], old) == 0 and redis.call('HEXISTS', KEYS[3], old) == 0 then
    table.insert(items, old)
  end
end
redis.call('DEL', KEYS[4], KEYS[3], KEYS[5], KEYS[6])
if #items == 0 then return items end
keep(KEYS[1])  -- it runs again: nothing of it expires until it ends again
for i = 1, #items, 1000 do
  redis.call('SADD', KEYS[4], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('HSET', KEYS[1], 'status', 'running', 'error', '')
redis.call('HDEL', KEYS[1], 'finished_at')
return items
"""
)


class JobControl:
    """Stop early and reopen, on the keys of ``jobs``.

    Example:
        >>> control = JobControl(JobStore.from_url(url))
        >>> control.check_budget(job_id)   # True if this call stopped the job
        False
    """

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self._check = jobs.client.register_script(_CHECK_BUDGET)
        self._reopen = jobs.client.register_script(_REOPEN)

    def _keys(self, job_id: str) -> list[str]:
        base = f"{self.jobs.prefix}:job:{job_id}"
        return [
            base,
            f"{base}:done",
            f"{base}:failed",
            f"{base}:retrying",
            f"{base}:crashes",
            f"{base}:finished",
        ]

    def check_budget(self, job_id: str) -> bool:
        """Stop the job if its failures exceed its budget; True if this call stopped it."""
        keys = [*self._keys(job_id)[:3], self._keys(job_id)[5]]
        return bool(self.jobs._call(self._check, keys=keys, args=[time.time()]))

    def reopen(self, job_id: str) -> list[str]:
        """Move the failed items back to pending and set the job running; the items to enqueue.

        Raises:
            JobNotFound: no such job.
        """
        items = self.jobs._call(self._reopen, keys=self._keys(job_id), args=[])
        if items is None:
            self.jobs.get(job_id)  # raises JobNotFound with the usual message
        return sorted(items or [])
