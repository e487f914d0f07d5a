-- Claim one tick of a recurring schedule, so that exactly one scheduler process enqueues it.
-- A tick is claimed only if it is later than the last one claimed: ticks never go backwards,
-- so a tick is never enqueued twice, even after its job was cleaned up, and a scheduler whose
-- clock lags cannot claim a tick that another already passed. Ticks in the future are refused.
-- KEYS[1] the schedule's last-tick key (dw:{queue}:sched:<name>:last)
-- ARGV[1] tick (epoch ms)  ARGV[2] ttl of the key (ms)
-- Returns: {claimed (1/0), the previously claimed tick (epoch ms), or -1 if there was none}
local tick = tonumber(ARGV[1])
local previous = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tick <= previous or tick > now_ms() then
  return {0, previous}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, previous}
