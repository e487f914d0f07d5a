-- Renew the leases of a worker's running jobs and publish its stats, in one round trip.
-- KEYS[1] job key prefix  KEYS[2] active  KEYS[3] workers zset  KEYS[4] this worker's stats key
-- ARGV[1] lease ms  ARGV[2] worker name  ARGV[3] stats (JSON)  ARGV[4] stats ttl ms
-- ARGV[5..] pairs: job id, fencing token
-- Returns: {lost, cancel}: ids whose lease is no longer ours, ids whose cancellation was asked
local now = now_ms()
local lost, cancel = {}, {}
local lease_until = now + tonumber(ARGV[1])
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local h = redis.call('HMGET', KEYS[1] .. id, 'token', 'status', 'cancel_requested')
  if h[1] == ARGV[i + 1] and h[2] == 'processing' then
    redis.call('ZADD', KEYS[2], 'XX', lease_until, id)
    if h[3] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('SET', KEYS[4], ARGV[3], 'PX', ttl)
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[2])
else
  redis.call('DEL', KEYS[4])
  redis.call('ZREM', KEYS[3], ARGV[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
return {lost, cancel}
