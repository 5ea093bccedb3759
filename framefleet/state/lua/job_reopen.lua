-- `framefleet retry`: the failed items (and earlier retries still without an outcome) go back
-- to pending, the job runs again, their crash counts are forgotten.
--!include lib/job.lua
-- KEYS: job   Returns the items to enqueue again; nil if there is no such job.
local job = KEYS[1]
if redis.call('EXISTS', job) == 0 then return nil end
local items = redis.call('HKEYS', job .. ':failed')
for _, old in ipairs(redis.call('SMEMBERS', job .. ':retrying')) do
  if redis.call('SISMEMBER', job .. ':done', old) == 0
      and redis.call('HEXISTS', job .. ':failed', old) == 0 then
    table.insert(items, old)
  end
end
redis.call('DEL', job .. ':retrying', job .. ':failed', job .. ':crashes', job .. ':finished')
if #items == 0 then return items end
keep(job)
for i = 1, #items, 1000 do
  redis.call('SADD', job .. ':retrying', unpack(items, i, math.min(i + 999, #items)))
end
redis.call('HSET', job, 'status', 'running', 'error', '')
redis.call('HDEL', job, 'finished_at')
return items
