-- Run a delayed or retrying job now: move it from the scheduled set to the ready queue at its
-- priority (behind the jobs of that priority already waiting), keeping its retry count.
-- KEYS[1] job key  KEYS[2] scheduled  KEYS[3] queued  KEYS[4] sequence  KEYS[5] intake
-- KEYS[6..11] absorb's keys (_lib.lua): the intake's jobs arrived first and queue first
-- ARGV[1] id  ARGV[2] notify cap
-- Returns: {status, moved}: the job's status before the call ('' when there is no such job)
--          and 1 if it moved, 0 if it was not waiting in the scheduled set
absorb(KEYS, 6)
local h = redis.call('HMGET', KEYS[1], 'status', 'priority')
if not h[1] then return {'', 0} end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {h[1], 0} end
local now = now_ms()
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'queued', 'updated_at', now)
redis.call('HDEL', KEYS[1], 'run_at')
redis.call('ZADD', KEYS[3], ready_score(tonumber(h[2]), redis.call('INCR', KEYS[4])), ARGV[1])
wake(KEYS[5], 1, tonumber(ARGV[2]))
return {h[1], 1}
