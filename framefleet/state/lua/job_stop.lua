-- Stops a job that has not ended, as cancelled or failed.
--!include lib/job.lua
-- KEYS: job   ARGV: status error now
-- Returns 1 if this call stopped it, 0 if it had ended, -1 if there is no such job.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if not is_live(status) then return 0 end
end_job(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1
