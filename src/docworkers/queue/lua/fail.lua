-- Record a failed attempt: schedule a retry, dead-letter the job, fail it for good, or mark it
-- cancelled; only if the caller's fencing token still holds.
-- KEYS[1] job key prefix  KEYS[2] active  KEYS[3] scheduled  KEYS[4] failed  KEYS[5] dead
-- KEYS[6] cancelled       KEYS[7] stats   KEYS[8] all-jobs  KEYS[9] job events prefix
-- ARGV[1] id  ARGV[2] token  ARGV[3] error (JSON)
-- ARGV[4] outcome: retry | fail | cancel | defer (run again later without using an attempt:
--         the service was known to be down, so the job never really tried)
-- ARGV[5] retry delay ms  ARGV[6] default max_retries  ARGV[7] dead-letter cap
-- ARGV[8] retention ms for failed and cancelled jobs
-- KEYS[10] history prefix: a failed attempt (retried, dead or failed; not a cancellation or
--          a deferral) is counted in its minute and day (_lib.lua)
-- Returns: the new status (retrying, dead, failed, cancelled) or '' if the token was stale.
-- The outcome is recorded in the job's events: retry/deferred with the delay and due time,
-- or the final status, each with the error's code and message.
local now = now_ms()
local prefix = KEYS[1]
local id = ARGV[1]
local key = prefix .. id
local h = redis.call('HMGET', key, 'token', 'status', 'retry_count', 'max_retries', 'type')
if h[1] ~= ARGV[2] or h[2] ~= 'processing' then return '' end
redis.call('ZREM', KEYS[2], id)
local outcome = ARGV[4]
local retries = tonumber(h[3])
local max_retries = tonumber(h[4]) or tonumber(ARGV[6])
local status
if outcome == 'cancel' then
  status = 'cancelled'
  redis.call('ZADD', KEYS[6], now, id)
elseif outcome == 'defer' then
  status = 'retrying'
  local run_at = now + tonumber(ARGV[5])
  redis.call('HSET', key, 'run_at', run_at)
  redis.call('ZADD', KEYS[3], run_at, id)
  redis.call('HINCRBY', KEYS[7], 'deferred', 1)
elseif outcome == 'retry' and retries < max_retries then
  status = 'retrying'
  local run_at = now + tonumber(ARGV[5])
  redis.call('HSET', key, 'retry_count', retries + 1, 'run_at', run_at)
  redis.call('ZADD', KEYS[3], run_at, id)
  redis.call('HINCRBY', KEYS[7], 'retried', 1)
elseif outcome == 'retry' then
  status = 'dead'
  dead_letter(prefix, KEYS[5], KEYS[8], id, now, tonumber(ARGV[7]), KEYS[9])
else
  status = 'failed'
  redis.call('ZADD', KEYS[4], now, id)
end
redis.call('HSET', key, 'status', status, 'error', ARGV[3], 'updated_at', now)
if outcome ~= 'cancel' and outcome ~= 'defer' then
  history_failed(KEYS[10], now, 1, {[h[5]] = 1})
end
local code, message = error_brief(ARGV[3])
if status == 'retrying' then
  local kind = 'retry'
  if outcome == 'defer' then kind = 'deferred' end
  record_event(KEYS[9] .. id, {now, kind, tonumber(ARGV[5]), now + tonumber(ARGV[5]), code,
    message})
else
  record_event(KEYS[9] .. id, {now, status, code, message})
end
if status ~= 'retrying' then
  redis.call('HSET', key, 'completed_at', now)
  redis.call('HINCRBY', KEYS[7], status, 1)
  redis.call('HINCRBY', KEYS[7], status .. ':' .. h[5], 1)
end
local cutoff = now - tonumber(ARGV[8])
trim_expired(prefix, KEYS[4], KEYS[8], cutoff, KEYS[9])
trim_expired(prefix, KEYS[6], KEYS[8], cutoff, KEYS[9])
return status
