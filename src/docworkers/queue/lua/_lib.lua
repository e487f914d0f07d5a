-- Shared helpers, prepended to every script when it is loaded (scripts.py). Defines no keys.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Lower scores pop first: higher priority first, then arrival order (seq).
-- Priorities are clamped to [-1000, 1000] by the client; 2^42 arrivals per level fit in a double.
local function ready_score(priority, seq)
  return (1000 - priority) * 4398046511104 + seq
end

-- Run one command over a flat list of arguments in calls of at most 1000 (Lua's unpack limit
-- is about 8000 values), e.g. ZADD of score/member pairs collected while looping over jobs.
local function call_chunked(command, key, args)
  for i = 1, #args, 1000 do
    redis.call(command, key, unpack(args, i, math.min(i + 999, #args)))
  end
end

-- Wake at most `count` idle workers, keeping the token list below `cap`.
local function wake(notify, count, cap)
  local room = cap - redis.call('LLEN', notify)
  if count < room then room = count end
  for _ = 1, room do redis.call('LPUSH', notify, '1') end
end

-- Put a job id in the dead-letter set and drop the oldest entries beyond `cap`.
local function dead_letter(prefix, dead, all_jobs, id, now, cap)
  redis.call('ZADD', dead, now, id)
  local over = redis.call('ZCARD', dead) - cap
  if over > 0 then
    local gone = redis.call('ZPOPMIN', dead, over)
    for i = 1, #gone, 2 do
      redis.call('DEL', prefix .. gone[i])
      redis.call('ZREM', all_jobs, gone[i])
    end
  end
end

-- Delete up to 100 jobs of `zset` finished before `cutoff` (ms); returns how many.
local function trim_expired(prefix, zset, all_jobs, cutoff)
  local old = redis.call('ZRANGEBYSCORE', zset, '-inf', cutoff, 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    redis.call('DEL', prefix .. id)
    redis.call('ZREM', zset, id)
    redis.call('ZREM', all_jobs, id)
  end
  return #old
end

