-- Take tokens from a cluster-wide token bucket, kept as GCRA: one number, the theoretical
-- arrival time (TAT), on Redis's clock so every client agrees. The bucket is full when
-- TAT <= now; a grant moves TAT on by tokens * interval; it is allowed while
-- TAT - now <= burst * interval. So over any window, grants <= burst + rate * window.
-- A caller willing to wait (ARGV[4] >= 0) reserves a later slot in the same call and sleeps
-- until then: waiters are served in arrival order with one round trip each.
-- KEYS[1] bucket: TAT in microseconds since the epoch (expires once the bucket is full again)
-- ARGV[1] interval µs (1e6 / rate)  ARGV[2] burst  ARGV[3] tokens
-- ARGV[4] longest wait µs the caller accepts: 0 = only now, -1 = any
-- Returns: {1, wait µs} granted, proceed after wait (0 = now);
--          {0, wait µs} refused, nothing taken; wait (>= 1) is when it would be granted
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
-- Rounded up: an error of 1 µs per grant may only make the limit stricter, never looser.
local new_tat = math.ceil(tat + tokens * interval)
local wait = math.ceil(new_tat - burst * interval - now)
if wait > 0 and max_wait >= 0 and wait > max_wait then
  return {0, wait}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
  'PX', math.ceil((new_tat - now) / 1000) + 1)
if wait < 0 then wait = 0 end
return {1, wait}
