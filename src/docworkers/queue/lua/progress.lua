-- Record progress of a running job (never backwards within an attempt) and renew its lease.
-- KEYS[1] job key  KEYS[2] active  KEYS[3] the job's events (a new message is recorded there)
-- ARGV[1] id  ARGV[2] fencing token  ARGV[3] progress 0-100  ARGV[4] message  ARGV[5] lease ms
-- Returns: -1 lease lost (another worker owns the job), 0 ok, 1 ok and cancellation was asked
local h = redis.call('HMGET', KEYS[1], 'token', 'status', 'progress', 'cancel_requested',
  'message')
if h[1] ~= ARGV[2] or h[2] ~= 'processing' then return -1 end
local now = now_ms()
local progress = tonumber(ARGV[3])
if progress < tonumber(h[3]) then progress = tonumber(h[3]) end
if ARGV[4] ~= '' and ARGV[4] ~= h[5] then
  record_progress(KEYS[3], now, progress, ARGV[4])
end
redis.call('HSET', KEYS[1], 'progress', progress, 'message', ARGV[4], 'updated_at', now)
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[5]), ARGV[1])
if h[4] == '1' then return 1 end
return 0
