-- Hands the lease to a delayed retry of its message: nobody holds it until the retry starts.
-- KEYS: leases lease   ARGV: id body deadline units_json
redis.call('HSET', KEYS[2], 'body', ARGV[2], 'holder', '', 'item', '', 'units', ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
