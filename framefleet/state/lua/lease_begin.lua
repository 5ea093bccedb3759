-- Takes the lease on a message (only while its job is live) and says, in the same call, which of
-- its units are done already, how often each was started by a process that died, and (in a
-- following job) which were rewritten since enqueued. One call per message.
--!include lib/job.lua
-- KEYS: job leases lease
-- ARGV: lease_id job_id task queue body holder deadline units_json max_crashes unit...
-- Returns {status, params, done flags, crash counts or {}, redo flags or {}} ({status} if the
-- job is not live; {false} if there is no such job). A crash count is the unit's starts alone
-- that ended with no outcome (0: a suspect, -1: none).
local f = redis.call('HMGET', KEYS[1], 'status', 'params', 'crashed', 'following', 'started_at')
if not is_live(f[1]) then return {f[1]} end
if not f[5] then
  -- The job's work starts with its first lease (rates count from here, not from a first
  -- outcome that a bad file gives in a millisecond).
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'started_at', t[1] + t[2] / 1000000)
end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[7], ARGV[1]) == 0 then
  -- Taken over (Celery redelivered the message of a process that died holding it, or a delayed
  -- retry starts): a holder that died counts a start of its units.
  count_crashes(KEYS[3], ARGV[6])
  redis.call('ZADD', KEYS[2], 'XX', ARGV[7], ARGV[1])
  f[3] = redis.call('HGET', KEYS[1], 'crashed')
end
local units = {unpack(ARGV, 10)}
local done = redis.call('SMISMEMBER', KEYS[1] .. ':done', unpack(units))
local crashes, redo = {}, {}
local alone = ''  -- a message of one unit runs it alone from the start
if #units == 1 and done[1] == 0 then
  -- A unit running alone counts its start now, so a copy of the message running beside it (a
  -- sweeper's resend racing Celery's redelivery) sees it; its outcome (or a resend) uncounts it.
  crashes = {start_alone(KEYS[1], units[1]) - 1}
  -- The lease names it only if it is going to run (not when it is failed as poison).
  if crashes[1] < tonumber(ARGV[9]) then alone = units[1] end
elseif f[3] then
  crashes = redis.call('HMGET', KEYS[1] .. ':crashes', unpack(units))
  for i = 1, #crashes do crashes[i] = tonumber(crashes[i] or '-1') end  -- -1: no suspect
end
if f[4] then redo = redis.call('SMISMEMBER', KEYS[1] .. ':follow:redo', unpack(units)) end
redis.call('HSET', KEYS[3], 'job', ARGV[2], 'job_key', KEYS[1], 'task', ARGV[3], 'queue', ARGV[4],
  'body', ARGV[5], 'holder', ARGV[6], 'item', alone, 'units', ARGV[8])
return {f[1], f[2] or '{}', done, crashes, redo}
