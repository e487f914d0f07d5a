-- Hand jobs back to the ready queue at shutdown, ahead of their priority class, without
-- counting an attempt; only jobs whose fencing token still holds.
-- KEYS[1] job key prefix  KEYS[2] active  KEYS[3] queued  KEYS[4] intake (wake-ups)
-- KEYS[5] job events prefix (each hand-back is recorded in the job's events)
-- ARGV[1] notify cap  ARGV[2..] pairs: job id, fencing token
-- Returns: number of jobs handed back
local now = now_ms()
local n = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local key = KEYS[1] .. id
  local h = redis.call('HMGET', key, 'token', 'status', 'priority', 'worker_id')
  if h[1] == ARGV[i + 1] and h[2] == 'processing' then
    record_event(KEYS[5] .. id, {now, 'released', h[4] or ''})
    redis.call('ZREM', KEYS[2], id)
    redis.call('HSET', key, 'status', 'queued', 'worker_id', '', 'updated_at', now)
    redis.call('ZADD', KEYS[3], ready_score(tonumber(h[3]), 0), id)
    n = n + 1
  end
end
if n > 0 then wake(KEYS[4], n, tonumber(ARGV[1])) end
return n
