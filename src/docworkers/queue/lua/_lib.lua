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

-- A job's timeline: a list of events, each a JSON array [ms, kind, details...] (see
-- docworkers.queue.events). At most EVENT_CAP are kept, the oldest dropped first; progress
-- messages push only while the list is shorter than PROGRESS_ROOM, after that the latest one
-- replaces the last event if it is a progress event, so a chatty job keeps room for its
-- lifecycle events. Messages are cut to EVENT_TEXT bytes. Whoever deletes a job deletes its
-- events too (with its hash: dead_letter, trim_expired, delete.lua).
local EVENT_CAP = 32
local PROGRESS_ROOM = 24
local EVENT_TEXT = 160

local function event_text(text)
  if type(text) ~= 'string' then return '' end
  return string.sub(text, 1, EVENT_TEXT)
end

local function record_event(events, event)
  if redis.call('RPUSH', events, cjson.encode(event)) > EVENT_CAP then
    redis.call('LTRIM', events, -EVENT_CAP, -1)
  end
end

-- One RPUSH while the list is short (the common case); past PROGRESS_ROOM the new event
-- replaces the one before it when that was a progress event too.
local function record_progress(events, now, progress, message)
  local event = cjson.encode({now, 'progress', progress, event_text(message)})
  local n = redis.call('RPUSH', events, event)
  if n > PROGRESS_ROOM then
    local before = redis.call('LINDEX', events, -2)
    if before and cjson.decode(before)[2] == 'progress' then
      redis.call('RPOP', events)
      redis.call('LSET', events, -1, event)
      return
    end
  end
  if n > EVENT_CAP then redis.call('LTRIM', events, -EVENT_CAP, -1) end
end

-- The code and (cut) message of an error stored as JSON by the client.
local function error_brief(raw)
  local ok, err = pcall(cjson.decode, raw or '')
  if not ok or type(err) ~= 'table' then return '', '' end
  return event_text(err.code), event_text(err.message)
end

-- Put a job id in the dead-letter set and drop the oldest entries beyond `cap` (with their
-- events, under `events`).
local function dead_letter(prefix, dead, all_jobs, id, now, cap, events)
  redis.call('ZADD', dead, now, id)
  local over = redis.call('ZCARD', dead) - cap
  if over > 0 then
    local gone = redis.call('ZPOPMIN', dead, over)
    for i = 1, #gone, 2 do
      redis.call('DEL', prefix .. gone[i], events .. gone[i])
      redis.call('ZREM', all_jobs, gone[i])
    end
  end
end

-- Delete up to 100 jobs of `zset` finished before `cutoff` (ms), with their events (under
-- `events`); returns how many.
local function trim_expired(prefix, zset, all_jobs, cutoff, events)
  local old = redis.call('ZRANGEBYSCORE', zset, '-inf', cutoff, 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    redis.call('DEL', prefix .. id, events .. id)
    redis.call('ZREM', zset, id)
    redis.call('ZREM', all_jobs, id)
  end
  return #old
end

