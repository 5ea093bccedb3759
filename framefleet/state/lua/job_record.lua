-- Records the final outcomes of one message's items, releases its lease, and decides once
-- whether that completed the job (or broke its failure budget). One call per message.
--!include lib/job.lua
-- KEYS: job leases lease   ARGV: now lease_id lag_window outcomes_json
-- outcomes_json: [{item, ok (bool), reason (JSON string), classes ({name: n}), frames}]
-- Returns {code, stopped}: code -1 no such job, 0 recorded, 1 this call completed the job;
-- stopped 1 if this call stopped the job on its failure budget.
local job, now = KEYS[1], ARGV[1]
if ARGV[2] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('DEL', KEYS[3])
end
local outcomes = cjson.decode(ARGV[4])
if #outcomes == 0 then return {0, 0} end
local f = redis.call('HMGET', job, 'status', 'items_expire_at', 'frames', 'classes', 'started_at',
  'params', 'crashed', 'following', 'failed_any', 'listed', 'total', 'finished_at', 'done_count')
local status = f[1]
if not status then return {-1, 0} end
local items = {}
for i, o in ipairs(outcomes) do items[i] = o['item'] end
if f[7] then redis.call('HDEL', job .. ':crashes', unpack(items)) end
-- A stopped job is final: outcomes of work still in flight when it stopped are not counted.
if status == 'cancelled' or status == 'failed' then return {0, 0} end
-- A done job whose per-item keys expired takes no late outcome (it would recreate them, forever).
local expire_at = tonumber(f[2] or '')
if expire_at and tonumber(now) >= expire_at then return {0, 0} end

local done_now = redis.call('SMISMEMBER', job .. ':done', unpack(items))
local ok_items, failed, frames = {}, {}, tonumber(f[3] or '0')
local classes = {}
if f[4] then classes = cjson.decode(f[4]) end
local any_failed = false
for i, o in ipairs(outcomes) do
  if o['ok'] then
    if done_now[i] == 0 then
      done_now[i] = 1  -- the same item twice in one call counts once
      table.insert(ok_items, o['item'])
      frames = frames + (tonumber(o['frames']) or 0)
      if type(o['classes']) == 'table' then
        for name, n in pairs(o['classes']) do classes[name] = (classes[name] or 0) + n end
      end
    end
  elseif done_now[i] == 0 then  -- a failure never replaces a success
    table.insert(failed, o['item'])
    table.insert(failed, o['reason'])
    any_failed = true
  end
end
if #ok_items > 0 then
  redis.call('SADD', job .. ':done', unpack(ok_items))
  if f[9] then redis.call('HDEL', job .. ':failed', unpack(ok_items)) end
end
-- The done set's size, kept beside it so that the completion check needs no SCARD.
local done_count = tonumber(f[13] or '')
if done_count then
  done_count = done_count + #ok_items
else  -- a job from before the counter
  done_count = redis.call('SCARD', job .. ':done')
end
if any_failed then redis.call('HSET', job .. ':failed', unpack(failed)) end
local fields = {'frames', frames, 'done_count', done_count}
if next(classes) ~= nil then
  table.insert(fields, 'classes'); table.insert(fields, cjson.encode(classes))
end
if not f[5] then table.insert(fields, 'started_at'); table.insert(fields, now) end
if any_failed and not f[9] then table.insert(fields, 'failed_any'); table.insert(fields, '1') end
redis.call('HSET', job, unpack(fields))
if f[8] then note_lags(job, items, now, tonumber(ARGV[3])) end

if status == 'done' then
  -- A late outcome of an ended job (a redelivery): its frozen counts and expiry follow.
  redis.call('HSET', job, 'n_done', redis.call('SCARD', job .. ':done'),
    'n_failed', redis.call('HLEN', job .. ':failed'))
  if expire_at then
    redis.call('EXPIREAT', job .. ':done', math.ceil(expire_at))
    redis.call('EXPIREAT', job .. ':failed', math.ceil(expire_at))
  end
  return {0, 0}
end
if any_failed and check_budget(job, f[6], now) == 1 then return {0, 1} end
local n_failed = 0
if f[9] or any_failed then n_failed = nil end
return {complete(job, now, {f[10], f[11], status, f[12]}, n_failed, done_count), 0}
