-- Reserve up to ARGV[1] ready jobs for a worker, after promoting due delayed jobs and
-- recovering jobs whose lease expired (their worker died or stalled: that counts as an attempt).
-- KEYS[1] job key prefix  KEYS[2] queued  KEYS[3] scheduled  KEYS[4] active (lease expiry)
-- KEYS[5] dead            KEYS[6] sequence  KEYS[7] notify  KEYS[8] stats  KEYS[9] all-jobs
-- KEYS[10] cancelled
-- ARGV[1] max jobs  ARGV[2] lease ms  ARGV[3] worker id  ARGV[4] default max_retries
-- ARGV[5] dead-letter cap
-- Returns: {due, job...}: due = ms time of the next scheduled job or -1; each job is its hash
--          as a flat field/value list, already carrying its new fencing token
local now = now_ms()
local prefix = KEYS[1]

local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[3], id)
  local pri = redis.call('HGET', prefix .. id, 'priority')
  if pri then
    redis.call('HSET', prefix .. id, 'status', 'queued', 'updated_at', now)
    redis.call('ZADD', KEYS[2], ready_score(tonumber(pri), redis.call('INCR', KEYS[6])), id)
  end
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[4], id)
  local key = prefix .. id
  local h = redis.call('HMGET', key, 'priority', 'retry_count', 'max_retries', 'worker_id',
    'cancel_requested')
  if h[1] and h[5] == '1' then
    redis.call('HSET', key, 'status', 'cancelled', 'completed_at', now, 'updated_at', now)
    redis.call('ZADD', KEYS[10], now, id)
  elseif h[1] then
    local retries = tonumber(h[2])
    local max_retries = tonumber(h[3]) or tonumber(ARGV[4])
    local err = cjson.encode({code = 'lease_expired', message = 'worker ' .. (h[4] or '?') ..
      ' stopped renewing its lease before finishing the job (killed, stalled or disconnected)'})
    redis.call('HINCRBY', KEYS[8], 'lease_expired', 1)
    if retries >= max_retries then
      redis.call('HSET', key, 'status', 'dead', 'error', err, 'completed_at', now,
        'updated_at', now)
      redis.call('HINCRBY', KEYS[8], 'dead', 1)
      dead_letter(prefix, KEYS[5], KEYS[9], id, now, tonumber(ARGV[5]))
    else
      redis.call('HSET', key, 'status', 'queued', 'retry_count', retries + 1, 'error', err,
        'updated_at', now)
      redis.call('HINCRBY', KEYS[8], 'retried', 1)
      redis.call('ZADD', KEYS[2], ready_score(tonumber(h[1]), redis.call('INCR', KEYS[6])), id)
    end
  end
end

local out = {-1}
local n = tonumber(ARGV[1])
if n > 0 then
  local lease_until = now + tonumber(ARGV[2])
  local popped = redis.call('ZPOPMIN', KEYS[2], n)
  for i = 1, #popped, 2 do
    local id = popped[i]
    local key = prefix .. id
    if redis.call('EXISTS', key) == 1 then
      redis.call('HINCRBY', key, 'token', 1)
      redis.call('HSET', key, 'status', 'processing', 'started_at', now, 'updated_at', now,
        'worker_id', ARGV[3], 'progress', 0, 'message', '')
      redis.call('HDEL', key, 'completed_at')
      redis.call('ZADD', KEYS[4], lease_until, id)
      out[#out + 1] = redis.call('HGETALL', key)
    end
  end
end
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[7]) end
local nxt = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if nxt[2] then out[1] = tonumber(nxt[2]) end
return out
