-- Cancel a job: a waiting job is cancelled at once and never runs; a running job gets a flag
-- that its worker sees at its next progress or heartbeat call.
-- KEYS[1] job key  KEYS[2] pending  KEYS[3] queued  KEYS[4] scheduled  KEYS[5] cancelled
-- KEYS[6] the job's events (the cancellation, or its request, is recorded)
-- KEYS[7..12] absorb's keys (_lib.lua): a job still in the intake becomes a job first
-- ARGV[1] id
-- Returns: 'cancelled', 'requested' (running), 'already <status>' when finished, '' if missing
absorb(KEYS, 7)
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'processing' then
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  record_event(KEYS[6], {now_ms(), 'cancel_requested'})
  return 'requested'
end
if status == 'pending' or status == 'queued' or status == 'retrying' then
  local now = now_ms()
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZADD', KEYS[5], now, ARGV[1])
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'completed_at', now, 'updated_at', now)
  record_event(KEYS[6], {now, 'cancelled', '', 'cancelled while ' .. status})
  -- Nothing ready: drop the wake-up tokens (absorbed above, the intake holds no job now).
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[8]) end
  return 'cancelled'
end
return 'already ' .. status
