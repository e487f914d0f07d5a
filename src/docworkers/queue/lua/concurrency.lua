-- Take (or renew) one of ARGV[3] cluster-wide slots for holder ARGV[1] until now + ARGV[2] ms.
-- Holders whose lease ran out (their process died) are dropped first: slots come back alone.
-- KEYS[1] holders zset: holder id -> lease expiry (ms); the key expires with its last lease
-- ARGV[1] holder id  ARGV[2] lease ms  ARGV[3] limit
-- ARGV[4] '1' = renew only: never take a slot this holder does not hold already
-- Returns: {1, 0} held; {0, wait ms} not held: wait is when the first lease runs out (a hint,
--          a release can come sooner; 0 when renewing a lease that is already gone)
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if ARGV[4] == '1' or redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    if #first == 0 then return {0, 0} end
    return {0, tonumber(first[2]) - now}
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + 1)
return {1, 0}
