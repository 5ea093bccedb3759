-- Decides per listed object whether it is new, rewritten or already enqueued, and counts it into
-- the job's total in the same step (see framefleet/state/follow.py).
-- KEYS: job done failed follow seen unsent arrived redo
-- ARGV: now max_items n_fields then per object: key tag modified video_hash video_done videos
-- Returns {closed, capped, deferred, key...}: the keys to send now.
if redis.call('HGET', KEYS[4], 'state') ~= 'following' then return {1, 0, 0} end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'listing' and status ~= 'running' then return {1, 0, 0} end
local now = ARGV[1]
local max_items = tonumber(ARGV[2])
local width = tonumber(ARGV[3])
local out = {0, 0, 0}
local cursor = redis.call('HGET', KEYS[4], 'cursor') or ''
for i = 4, #ARGV, width do
  local key, tag, modified = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local arrived = now
  if modified > 0 then arrived = ARGV[i + 2] end
  local previous = redis.call('HGET', KEYS[5], key)
  if previous ~= tag then
    local seen = tonumber(redis.call('HGET', KEYS[4], 'seen') or '0')
    if max_items > 0 and seen >= max_items then out[2] = 1; break end
    if not previous then
      redis.call('HINCRBY', KEYS[1], 'total', 1)
    elseif redis.call('SISMEMBER', KEYS[2], key) == 0
        and redis.call('HEXISTS', KEYS[3], key) == 0 then
      -- the earlier content is still in flight: redo it once it has its outcome
      out[3] = out[3] + 1
      tag = nil
    else
      -- rewritten after its outcome: it is pending again, and runs again
      if redis.call('SREM', KEYS[2], key) == 1
          and redis.call('HEXISTS', KEYS[1], 'done_count') == 1 then
        redis.call('HINCRBY', KEYS[1], 'done_count', -1)  -- kept beside the set (job_record)
      end
      redis.call('HDEL', KEYS[3], key)
      redis.call('SADD', KEYS[8], key)
      redis.call('HINCRBY', KEYS[4], 'rewrites', 1)
      if ARGV[i + 3] ~= '' then
        redis.call('DEL', ARGV[i + 3], ARGV[i + 4])
        redis.call('ZREM', ARGV[i + 5], key)
      end
    end
    if tag then
      redis.call('HSET', KEYS[5], key, tag)
      redis.call('HSET', KEYS[6], key, '1')
      redis.call('HSET', KEYS[7], key, arrived)
      redis.call('HINCRBY', KEYS[4], 'seen', 1)
      table.insert(out, key)
    end
  end
  if key > cursor then cursor = key end
end
redis.call('HSET', KEYS[4], 'cursor', cursor)
if max_items > 0 and tonumber(redis.call('HGET', KEYS[4], 'seen') or '0') >= max_items then
  out[2] = 1
end
return out
