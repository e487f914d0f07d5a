-- Pause or resume a queue. While its paused flag exists, reserve.lua leases none of its jobs
-- (it still promotes due delayed jobs and recovers expired leases, so nothing is lost or
-- failed); running jobs finish as usual. Resuming wakes idle workers, which block on the
-- intake list, one token per ready job (capped).
-- KEYS[1] paused flag  KEYS[2] queued  KEYS[3] intake
-- ARGV[1] '1' pause, '0' resume  ARGV[2] notify cap
-- Returns: 1 if the call changed the queue's state, 0 if it already was paused (or running)
local paused = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[1] == '1' then
  if paused then return 0 end
  redis.call('SET', KEYS[1], now_ms())  -- the value: when the pause began (ms)
  return 1
end
if not paused then return 0 end
redis.call('DEL', KEYS[1])
local ready = redis.call('ZCARD', KEYS[2])
if ready > 0 then wake(KEYS[3], ready, tonumber(ARGV[2])) end
return 1
