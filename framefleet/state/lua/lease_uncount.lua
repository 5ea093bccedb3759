-- Uncounts a start of a unit that ran alone: it is resent (a transient retry) or was skipped, so
-- its start did not die.
-- KEYS: crashes   ARGV: unit
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
