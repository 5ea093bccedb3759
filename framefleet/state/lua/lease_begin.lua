-- Takes the lease on a message (only while its job is live) and says, in the same call, which of
-- its units are done already, how often each was started by a process that died, and (in a
-- following job) which were rewritten since enqueued. One call per message.
--!include lib/job.lua
-- KEYS: job leases lease
-- ARGV: lease_id job_id task queue body holder deadline units_json unit...
-- Returns {status, params, done flags, crash counts or {}, redo flags or {}} ({status} if the
-- job is not live; {false} if there is no such job).
local f = redis.call('HMGET', KEYS[1], 'status', 'params', 'crashed', 'following')
if not is_live(f[1]) then return {f[1]} end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[7], ARGV[1]) == 0 then
  -- Taken over (Celery redelivered the message of a process that died holding it, or a delayed
  -- retry starts): a holder that died counts a start of its units.
  count_crashes(KEYS[3], ARGV[6])
  redis.call('ZADD', KEYS[2], 'XX', ARGV[7], ARGV[1])
  f[3] = redis.call('HGET', KEYS[1], 'crashed')
end
local units = {unpack(ARGV, 9)}
local alone = ''  -- a message of one unit runs it alone from the start
if #units == 1 then alone = units[1] end
redis.call('HSET', KEYS[3], 'job', ARGV[2], 'job_key', KEYS[1], 'task', ARGV[3], 'queue', ARGV[4],
  'body', ARGV[5], 'holder', ARGV[6], 'item', alone, 'units', ARGV[8])
local done = redis.call('SMISMEMBER', KEYS[1] .. ':done', unpack(units))
local crashes, redo = {}, {}
if f[3] then crashes = redis.call('HMGET', KEYS[1] .. ':crashes', unpack(units)) end
if f[4] then redo = redis.call('SMISMEMBER', KEYS[1] .. ':follow:redo', unpack(units)) end
for i = 1, #crashes do crashes[i] = tonumber(crashes[i] or '-1') end  -- -1: no suspect
return {f[1], f[2] or '{}', done, crashes, redo}
