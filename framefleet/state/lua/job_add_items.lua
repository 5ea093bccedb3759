-- Counts messages' items into the job's total, once per message number, so a call repeated
-- after a dropped connection cannot count a message twice.
-- KEYS: job   ARGV: message_no count [message_no count ...]
local numbers, counts = {}, {}
for i = 1, #ARGV, 2 do
  table.insert(numbers, ARGV[i]); counts[ARGV[i]] = tonumber(ARGV[i + 1])
end
local seen = redis.call('SMISMEMBER', KEYS[1] .. ':counted', unpack(numbers))
local new, total = {}, 0
for i, number in ipairs(numbers) do
  if seen[i] == 0 then table.insert(new, number); total = total + counts[number] end
end
if #new == 0 then return 0 end
redis.call('SADD', KEYS[1] .. ':counted', unpack(new))
redis.call('HINCRBY', KEYS[1], 'total', total)
return total
