-- A sweeper claims expired leases: each gets a fresh deadline and the claimer as holder, so of
-- many sweepers exactly one resends each message; the starts its dead holder left are counted.
--!include lib/job.lua
-- KEYS: leases   ARGV: lease_prefix now new_deadline limit claimer
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  local h = ARGV[1] .. id
  redis.call('ZADD', KEYS[1], ARGV[3], id)
  count_crashes(h, ARGV[5])
  local f = redis.call('HMGET', h, 'job', 'task', 'queue', 'body', 'item', 'holder')
  -- counted once: a sweeper that dies before it resends leaves nothing to count again
  redis.call('HSET', h, 'holder', ARGV[5], 'item', '', 'units', '[]')
  table.insert(out, {id, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or ''})
end
return out
