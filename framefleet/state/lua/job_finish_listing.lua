-- The producer has sent every message: the job can complete (now, if every item has an outcome).
--!include lib/job.lua
-- KEYS: job   ARGV: now   Returns 1 if this call completed the job.
redis.call('HSET', KEYS[1], 'listed', '1')
if redis.call('HGET', KEYS[1], 'status') == 'listing' then
  redis.call('HSET', KEYS[1], 'status', 'running')
end
return complete(KEYS[1], ARGV[1])
