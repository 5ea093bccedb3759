-- A suspect of a message runs alone now (unit ""; the rest run together again): the lease says so,
-- and the unit's start is counted (see start_alone).
--!include lib/job.lua
-- KEYS: job lease   ARGV: unit   Returns the unit's starts now counted (0 for "").
redis.call('HSET', KEYS[2], 'item', ARGV[1])
if ARGV[1] == '' then return 0 end
return start_alone(KEYS[1], ARGV[1])
