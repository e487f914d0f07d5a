-- Create jobs and queue them (or park them as pending or delayed). Idempotent per job id.
-- The intake is absorbed first (_lib.lua), so these jobs queue behind the ones already pushed.
-- KEYS[1] job key prefix  KEYS[2] queued zset  KEYS[3] scheduled zset  KEYS[4] pending zset
-- KEYS[5] all-jobs zset   KEYS[6] sequence     KEYS[7] intake list (wake-up tokens go there)
-- KEYS[8..13] absorb's keys (_lib.lua)
-- ARGV[1] number of jobs  ARGV[2] notify cap
-- ARGV[3..] 8 values per job: id, type, payload (JSON), priority, delay ms (-1 = pending),
--           max_retries ("" = the worker's default), user_id, tags (JSON)
-- Returns: one integer per job: 1 created, 0 a job with that id already existed (no change)
absorb(KEYS, 8)
local now = now_ms()
local n = tonumber(ARGV[1])
local out = {}
local ready = 0
-- One INCRBY reserves a block of arrival numbers for the whole batch: jobs keep their order,
-- and gaps (jobs that were not queued) are harmless.
local seq = redis.call('INCRBY', KEYS[6], n) - n
local listed, queued = {}, {}  -- score/member pairs for all-jobs and queued, added at the end
for i = 0, n - 1 do
  local b = 3 + i * 8
  local id = ARGV[b]
  local key = KEYS[1] .. id
  if redis.call('EXISTS', key) == 1 then
    out[#out + 1] = 0
  else
    local priority = tonumber(ARGV[b + 3])
    local delay = tonumber(ARGV[b + 4])
    local status = 'queued'
    if delay < 0 then status = 'pending' end
    redis.call('HSET', key, 'id', id, 'type', ARGV[b + 1], 'payload', ARGV[b + 2],
      'priority', priority, 'status', status, 'progress', 0, 'message', '', 'retry_count', 0,
      'max_retries', ARGV[b + 5], 'user_id', ARGV[b + 6], 'tags', ARGV[b + 7],
      'created_at', now, 'updated_at', now, 'token', 0)
    listed[#listed + 1] = now
    listed[#listed + 1] = id
    if delay < 0 then
      redis.call('ZADD', KEYS[4], now, id)
    elseif delay > 0 then
      redis.call('HSET', key, 'run_at', now + delay)
      redis.call('ZADD', KEYS[3], now + delay, id)
    else
      seq = seq + 1
      queued[#queued + 1] = ready_score(priority, seq)
      queued[#queued + 1] = id
      ready = ready + 1
    end
    out[#out + 1] = 1
  end
end
call_chunked('ZADD', KEYS[5], listed)
call_chunked('ZADD', KEYS[2], queued)
if ready > 0 then wake(KEYS[7], ready, tonumber(ARGV[2])) end
return out
