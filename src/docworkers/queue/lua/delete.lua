-- Delete a job that is not running, from its hash and every collection.
-- KEYS[1] job key  KEYS[2..9] the eight state collections (KEYS[3] is queued)
-- KEYS[10] all-jobs  KEYS[11] the job's events (deleted with it)
-- KEYS[12..17] absorb's keys (_lib.lua): a job still in the intake becomes a job first
-- ARGV[1] id
-- Returns: 1 deleted, 0 no such job, -1 refused because the job is running (cancel it first)
absorb(KEYS, 12)
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
if status == 'processing' then return -1 end
for k = 2, 10 do redis.call('ZREM', KEYS[k], ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[11])
-- Nothing ready: drop the wake-up tokens (absorbed above, the intake holds no job now).
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[13]) end
return 1
