-- Closes a following job: no new objects; what was counted still runs.
-- KEYS: follow wake index   ARGV: reason now job_id   Returns 1 if this call closed it.
if redis.call('HGET', KEYS[1], 'state') ~= 'following' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'closed', 'reason', ARGV[1], 'closed_at', ARGV[2])
redis.call('RPUSH', KEYS[2], 'closed')
local ident = redis.call('HGET', KEYS[1], 'identity')
if ident and redis.call('HGET', KEYS[3], ident) == ARGV[3] then
  redis.call('HDEL', KEYS[3], ident)
end
return 1
