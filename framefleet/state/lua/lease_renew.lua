-- Pushes forward the deadlines of the leases a process still holds.
-- KEYS: leases   ARGV: lease_prefix holder deadline id...   Returns how many it renewed.
local n = 0
for i = 4, #ARGV do
  if redis.call('HGET', ARGV[1] .. ARGV[i], 'holder') == ARGV[2] then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[i])
    n = n + 1
  end
end
return n
