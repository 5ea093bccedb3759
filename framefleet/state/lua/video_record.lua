-- Records one segment's outcome in its video and decides, once, what that means: the last
-- segment (the caller enqueues the merge) or a failed segment (the video fails in the job).
--!include lib/job.lua
-- KEYS: video done job   ARGV: segment ok item reason now frames lag_window
-- Returns -1 never planned, 0 nothing more, 1 merge due, 2 video failed, 3 failed + job complete.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
local job = KEYS[3]
if ARGV[2] == '1' then
  if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'frames_done', ARGV[6])
  end
  if redis.call('SCARD', KEYS[2]) >= tonumber(redis.call('HGET', KEYS[1], 'segments')) then
    redis.call('HSET', KEYS[1], 'state', 'merging')
    return 1
  end
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'failed', 'error', cjson.decode(ARGV[4])['message'] or '')
if redis.call('SISMEMBER', job .. ':done', ARGV[3]) == 0 then
  redis.call('HSET', job .. ':failed', ARGV[3], ARGV[4])
  redis.call('HSET', job, 'failed_any', '1')
end
redis.call('HSETNX', job, 'started_at', ARGV[5])
local f = redis.call('HMGET', job, 'params', 'following')
if f[2] then note_lags(job, {ARGV[3]}, ARGV[5], tonumber(ARGV[7])) end
if check_budget(job, f[1], ARGV[5]) == 1 then return 3 end  -- stopped: the report is due
return 2 + complete(job, ARGV[5])
