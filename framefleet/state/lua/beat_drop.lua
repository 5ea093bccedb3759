-- Deletes a producer's beat only if it is still this producer's.
-- KEYS: beat   ARGV: me
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
