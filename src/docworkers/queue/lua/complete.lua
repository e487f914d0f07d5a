-- Mark a batch of reserved jobs completed, each only if its fencing token still holds;
-- then forget completed jobs older than the retention. A completed job keeps no `error`: an
-- earlier attempt's failure or deferral is history (retry_count counts it, the worker's log has
-- it), and a job that succeeded must not show it as its own error.
-- KEYS[1] job key prefix  KEYS[2] active  KEYS[3] completed  KEYS[4] all-jobs  KEYS[5] stats
--         (completed:<type> per job type, whose sum is the total, and processing_ms)
-- KEYS[6] job events prefix (a completion is recorded in the job's events)
-- KEYS[7] history prefix (completions per minute, durations by type: _lib.lua)
-- ARGV[1] retention ms  ARGV[2] number of jobs
-- ARGV[3..] 3 values per job: id, token, result (JSON)
-- Returns: one integer per job: 1 completed, 0 rejected (lease taken over, or not processing)
local now = now_ms()
local prefix = KEYS[1]
local completed_event = '[' .. now .. ',"completed"]'  -- {now, 'completed'} in JSON
local out = {}
local done = 0
local busy_ms = 0
local by_type = {}
local took = {}  -- durations by type, for the history
local ids, finished = {}, {}  -- for the active and completed sets, changed at the end
for i = 0, tonumber(ARGV[2]) - 1 do
  local b = 3 + i * 3
  local id = ARGV[b]
  local key = prefix .. id
  local h = redis.call('HMGET', key, 'token', 'status', 'type', 'started_at', 'error')
  if h[1] == ARGV[b + 1] and h[2] == 'processing' then
    redis.call('HSET', key, 'status', 'completed', 'result', ARGV[b + 2], 'progress', 100,
      'completed_at', now, 'updated_at', now)
    if h[5] then redis.call('HDEL', key, 'error') end
    record_event(KEYS[6] .. id, completed_event)
    ids[#ids + 1] = id
    finished[#finished + 1] = now
    finished[#finished + 1] = id
    by_type[h[3]] = (by_type[h[3]] or 0) + 1
    busy_ms = busy_ms + now - tonumber(h[4])
    note_duration(took, h[3], now - tonumber(h[4]))
    done = done + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
call_chunked('ZREM', KEYS[2], ids)
call_chunked('ZADD', KEYS[3], finished)
for job_type, count in pairs(by_type) do
  redis.call('HINCRBY', KEYS[5], 'completed:' .. job_type, count)
end
if done > 0 then
  redis.call('HINCRBY', KEYS[5], 'processing_ms', busy_ms)
  history_completed(KEYS[7], now, done, took)
end
trim_expired(prefix, KEYS[3], KEYS[4], now - tonumber(ARGV[1]), KEYS[6])
return out
