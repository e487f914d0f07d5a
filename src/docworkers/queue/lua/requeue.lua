-- Put a failed, dead, cancelled or pending job back in the ready queue with a fresh retry budget.
-- KEYS[1] job key  KEYS[2] failed  KEYS[3] dead  KEYS[4] cancelled  KEYS[5] pending
-- KEYS[6] queued   KEYS[7] sequence  KEYS[8] intake  KEYS[9] the job's events (recorded there)
-- KEYS[10..15] absorb's keys (_lib.lua): the intake's jobs arrived first and queue first
-- ARGV[1] id  ARGV[2] notify cap
-- Returns: the job's previous status ('' if missing); only the four listed statuses move
absorb(KEYS, 10)
local h = redis.call('HMGET', KEYS[1], 'status', 'priority')
local status = h[1]
if not status then return '' end
if status ~= 'failed' and status ~= 'dead' and status ~= 'cancelled' and status ~= 'pending' then
  return status
end
local now = now_ms()
for k = 2, 5 do redis.call('ZREM', KEYS[k], ARGV[1]) end
redis.call('HSET', KEYS[1], 'status', 'queued', 'retry_count', 0, 'progress', 0,
  'cancel_requested', '0', 'updated_at', now)
redis.call('HDEL', KEYS[1], 'completed_at', 'error', 'result')
record_event(KEYS[9], {now, 'requeued', status})
redis.call('ZADD', KEYS[6], ready_score(tonumber(h[2]), redis.call('INCR', KEYS[7])), ARGV[1])
wake(KEYS[8], 1, tonumber(ARGV[2]))
return status
