-- Shared steps on one job, included by the scripts that record outcomes or end a job.
-- Every key of a job shares the stem KEYS[1] = {prefix}:job:{id} (see framefleet/state/keys.py),
-- so a script gets the job key and builds the others: this needs a single Redis, not a cluster.

-- The per-item keys of a job (what retention expires when it ends): generated from keys.py.
local PER_ITEM = {{PER_ITEM}}

local function per_item_keys(job)
  local keys = {}
  for _, item in ipairs(redis.call('ZRANGE', job .. ':videos', 0, -1)) do
    table.insert(keys, job .. ':video:' .. item)
    table.insert(keys, job .. ':video:' .. item .. ':done')
  end
  for _, suffix in ipairs(PER_ITEM) do table.insert(keys, job .. ':' .. suffix) end
  return keys
end

-- Counts freeze into the hash and per-item keys get the job's item_ttl_s.
local function retire(job, now)
  redis.call('HSET', job, 'n_done', redis.call('SCARD', job .. ':done'),
    'n_failed', redis.call('HLEN', job .. ':failed'))
  local ttl = tonumber(redis.call('HGET', job, 'item_ttl_s') or '0') or 0
  if ttl <= 0 then return end
  for _, key in ipairs(per_item_keys(job)) do redis.call('EXPIRE', key, ttl) end
  redis.call('HSET', job, 'items_expire_at', tonumber(now) + ttl)
end

-- An ended job runs again (retry): nothing of it expires until it ends again.
local function keep(job)
  for _, key in ipairs(per_item_keys(job)) do redis.call('PERSIST', key) end
  redis.call('HDEL', job, 'items_expire_at', 'n_done', 'n_failed')
end

local function is_live(status)
  return status == 'running' or status == 'listing'
end

-- The one way a job ends: its status, its end time, the token that wakes every waiter, retention.
local function end_job(job, status, error, now)
  redis.call('HSET', job, 'status', status, 'finished_at', now)
  if error ~= '' then redis.call('HSET', job, 'error', error) end
  redis.call('RPUSH', job .. ':finished', 'finished')
  retire(job, now)
end

-- Ends the job as done once it is listed and every item has an outcome; 1 if this call did.
-- known: {listed, total, status, finished_at} as the caller read them (nil: read here);
-- n_failed, n_done: the counts if the caller knows them (nil: counted here).
local function complete(job, now, known, n_failed, n_done)
  local f = known or redis.call('HMGET', job, 'listed', 'total', 'status', 'finished_at')
  if f[1] ~= '1' or f[4] then return 0 end
  n_done = n_done or redis.call('SCARD', job .. ':done')
  n_failed = n_failed or redis.call('HLEN', job .. ':failed')
  if n_done + n_failed < tonumber(f[2] or '0') then return 0 end
  if f[3] == 'running' then
    end_job(job, 'done', '', now)
  else  -- a job still listing cannot be listed; any other status is final already
    redis.call('HSET', job, 'finished_at', now)
    redis.call('RPUSH', job .. ':finished', 'finished')
    retire(job, now)
  end
  return 1
end

-- The failure budget: stops a live job once enough items have an outcome and more than its
-- max_failure_rate of them failed; 1 if this call stopped it.
local function check_budget(job, params_json, now)
  local ok, params = pcall(cjson.decode, params_json or '{}')
  if not ok or type(params) ~= 'table' then return 0 end
  local rate = tonumber(params['max_failure_rate'] or 1)
  if rate == nil or rate >= 1 then return 0 end
  if not is_live(redis.call('HGET', job, 'status')) then return 0 end
  local failed = redis.call('HLEN', job .. ':failed')
  local seen = failed + redis.call('SCARD', job .. ':done')
  if seen < tonumber(params['min_failure_sample'] or 20) or failed <= rate * seen then return 0 end
  end_job(job, 'failed', string.format('stopped early: %d of %d items failed (%.0f%%), more ' ..
    'than --max-failure-rate %.0f%%; the rest of the job was dropped. Check the model and the ' ..
    'input, then resubmit', failed, seen, 100 * failed / seen, 100 * rate), now)
  return 1
end

-- Arrival-to-outcome lags of a following job's items (for status's p50/p95).
local function note_lags(job, items, now, window)
  local arrived = redis.call('HMGET', job .. ':follow:arrived', unpack(items))
  local lags, gone = {}, {}
  for i, at in ipairs(arrived) do
    if at then
      table.insert(lags, tostring(math.max(0, tonumber(now) - tonumber(at))))
      table.insert(gone, items[i])
    end
  end
  if #gone == 0 then return end
  redis.call('HDEL', job .. ':follow:arrived', unpack(gone))
  redis.call('LPUSH', job .. ':follow:lag', unpack(lags))
  redis.call('LTRIM', job .. ':follow:lag', 0, window - 1)
end

-- A unit starts alone (its message's only unit, or a suspect run by itself): its start is counted
-- at once, and uncounted by its outcome or a resend, so a start left counted is one whose process
-- died. Returns the starts now counted, this one included.
local function start_alone(job, unit)
  redis.call('HSET', job, 'crashed', '1')
  return redis.call('HINCRBY', job .. ':crashes', unit, 1)
end

-- A lease's holder died holding it. A unit that ran alone counted its start already; the units of
-- a message that ran together become suspects (0), so that they run alone next time and a poison
-- unit's deaths are its own. Marked once per death, by whoever finds the lease (a Celery
-- redelivery taking it over, or a sweeper). me: the caller, whose own lease (a call repeated
-- after a dropped reply) is no death.
local function count_crashes(lease, me)
  local f = redis.call('HMGET', lease, 'job_key', 'item', 'units', 'holder')
  local job, item, units, holder = f[1], f[2], f[3], f[4]
  if not job or not holder or holder == '' or holder == me then return end  -- '': a retry's
  if item and item ~= '' then return end
  local ok, items = pcall(cjson.decode, units or '[]')
  if not ok or type(items) ~= 'table' or #items == 0 then return end
  local done = redis.call('SMISMEMBER', job .. ':done', unpack(items))
  local marked = false
  for i, name in ipairs(items) do
    if done[i] == 0 and redis.call('HEXISTS', job .. ':failed', name) == 0 then
      redis.call('HSETNX', job .. ':crashes', name, 0)
      marked = true
    end
  end
  if marked then redis.call('HSET', job, 'crashed', '1') end
end
