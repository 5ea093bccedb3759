-- Takes a producer's beat if it is free, this producer's, or a dead holder's; else who holds it.
-- KEYS: beat   ARGV: me ttl_ms dead_holder ("" for none)
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
