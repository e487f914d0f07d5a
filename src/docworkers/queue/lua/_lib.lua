-- Shared helpers: the ones a script uses are prepended to it when it is loaded (lib_for in
-- scripts.py: top-level `local` definitions only, each with the comment above it). Defines no
-- keys.

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

-- Wake at most `count` idle workers: idle workers block on the intake list (see absorb), so a
-- wake-up is an empty entry there, skipped by absorb. The list is kept below `cap` entries.
local function wake(intake, count, cap)
  local room = cap - redis.call('LLEN', intake)
  if count < room then room = count end
  for _ = 1, room do redis.call('RPUSH', intake, '') end
end

-- Write the hash of a job taken from the intake (h: its parsed header, h.payload its payload)
-- as a queued job (see absorb below).
local function intake_job_hash(prefix, h)
  local created = h[7]
  redis.call('HSET', prefix .. h[1], 'id', h[1], 'type', h[2], 'payload', h.payload,
    'priority', h[3], 'status', 'queued', 'progress', 0, 'message', '', 'retry_count', 0,
    'max_retries', h[4], 'user_id', h[5], 'tags', h[6], 'created_at', created,
    'updated_at', created, 'token', 0)
end

-- The intake: a producer enqueues a ready job with a generated id in ONE command, an RPUSH of
-- the packed job on the queue's intake list (docworkers.queue.intake packs it):
--   JSON header [id, type, priority, max_retries, user_id, tags JSON, created ms] "\n" payload
-- Idle workers block on that list with BLMOVE into the claimed list (so an entry taken by a
-- worker that dies before its reservation is not lost). Every script that reads or changes the
-- queue first calls absorb: it moves every job entry, claimed ones first (they were taken from
-- the head), into a job hash, all-jobs and queued, with arrival numbers in list order, so FIFO
-- by arrival at Redis holds across the intake and enqueue.lua. Wake-up tokens ('') stay: one
-- is left whenever jobs are absorbed (however many tokens were there), and with only tokens
-- there absorb writes nothing (so readers still work on a master that refuses writes:
-- min-replicas-to-write). An entry
-- whose job already exists is dropped (a producer's retried RPUSH after a lost reply:
-- at-least-once into the list, exactly one job).
-- KEYS (in this order, at `base` in the caller's KEYS): job key prefix, intake, claimed,
-- queued, all-jobs, sequence. Returns the number of jobs created and whether a wake-up token
-- is left in the intake. With `settle` true the caller settles the token itself (reserve.lua,
-- which pops jobs next and knows whether any are left for another worker): where one would be
-- pushed, none is and 'owed' is returned instead of true (the intake is left empty). With
-- `hold` true, a lone new job (the only entry of this call) is listed in all-jobs but not
-- written: its parsed header (with .payload) is returned third, and the caller writes it
-- (reserve.lua leases it at once when it is first in line, else queues it: queue_held).
local function absorb(keys, base, settle, hold)
  local prefix, intake, claimed = keys[base], keys[base + 1], keys[base + 2]
  -- Both lists are read outright (every reservation comes here): two commands whether the
  -- intake alone holds something (a token left while a backlog lasts), the claimed list alone
  -- (a job an idle worker's BLMOVE took) or neither.
  local claims = redis.call('LRANGE', claimed, 0, -1)
  local pushed = redis.call('LRANGE', intake, 0, -1)
  local entries, tokens = {}, false
  for _, got in ipairs({claims, pushed}) do
    for _, entry in ipairs(got) do
      if entry == '' then tokens = true else entries[#entries + 1] = entry end
    end
  end
  if #entries == 0 then return 0, tokens end
  -- One token for the jobs made here: a worker between two waits has missed their entries.
  redis.call('DEL', claimed, intake)
  local left = 'owed'
  if not settle then
    redis.call('RPUSH', intake, '')
    left = true
  end
  local parsed = {}
  for _, entry in ipairs(entries) do
    local cut = string.find(entry, '\n', 1, true)
    local ok, h = pcall(cjson.decode, string.sub(entry, 1, (cut or 1) - 1))
    if cut and ok and type(h) == 'table' and type(h[1]) == 'string' then
      h.payload = string.sub(entry, cut + 1)
      parsed[#parsed + 1] = h
    end
  end
  if hold and #parsed == 1 then
    -- ZADD NX both tells whether the job exists already and lists it in all-jobs.
    local h = parsed[1]
    if redis.call('ZADD', keys[base + 4], 'NX', h[7], h[1]) == 0 then return 0, left end
    return 1, left, h  -- its arrival number: held_arrival
  end
  -- Drop the entries whose job exists already, or came earlier in this batch. Every job hash
  -- is in all-jobs (the keyspace invariant), so one ZMSCORE per 1000 entries answers for all
  -- of them, instead of an EXISTS per entry.
  local jobs, seen = {}, {}
  for i = 1, #parsed, 1000 do
    local last = math.min(i + 999, #parsed)
    local ids = {}
    for j = i, last do ids[#ids + 1] = parsed[j][1] end
    local known = redis.call('ZMSCORE', keys[base + 4], unpack(ids))
    for j = i, last do
      local id = parsed[j][1]
      if not known[j - i + 1] and not seen[id] then
        seen[id] = true
        jobs[#jobs + 1] = parsed[j]
      end
    end
  end
  if #jobs == 0 then return 0, left end
  local seq = redis.call('INCRBY', keys[base + 5], #jobs) - #jobs
  local listed, queued = {}, {}
  for i, h in ipairs(jobs) do
    local id, created = h[1], h[7]
    intake_job_hash(prefix, h)
    listed[#listed + 1] = created
    listed[#listed + 1] = id
    queued[#queued + 1] = ready_score(tonumber(h[3]), seq + i)
    queued[#queued + 1] = id
  end
  call_chunked('ZADD', keys[base + 4], listed)
  call_chunked('ZADD', keys[base + 3], queued)
  return #jobs, left
end

-- The arrival number of the job absorb held, taken when first needed: the caller asks for it
-- before any later arrival takes one (a delayed job promoted, a lease recovered), so the order
-- is absorb's; a held job leased at once with nothing ready needs none.
local function held_arrival(keys, base, h)
  if not h.seq then h.seq = redis.call('INCR', keys[base + 5]) end
  return h.seq
end

-- Queue the job that absorb held (see above) as absorb would have (it is in all-jobs).
local function queue_held(keys, base, h)
  intake_job_hash(keys[base], h)
  redis.call('ZADD', keys[base + 3], ready_score(tonumber(h[3]), held_arrival(keys, base, h)),
    h[1])
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

-- `s` as a JSON string: cjson's encoding, written out for the usual names (worker ids).
local function json_string(s)
  if string.find(s, '[^%w%-%.:_@]') then return cjson.encode(s) end
  return '"' .. s .. '"'
end

-- `event`: a table, or its JSON already encoded (numbers written by `..` come out as cjson
-- writes them, %.14g: whole milliseconds and counts exactly).
local function record_event(events, event)
  if type(event) == 'table' then event = cjson.encode(event) end
  if redis.call('RPUSH', events, event) > EVENT_CAP then
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

-- History: counters in time buckets under a prefix from KEYS (the layout, the reader and the
-- memory bound are in docworkers.queue.history). <prefix>h:<epoch hour> holds the hour's
-- completed (c<minute>) and failed (f<minute>) attempts per minute and its completed jobs'
-- durations (d:<type>:<bin>); <prefix>d:<epoch day> the day's durations and failed attempts
-- per type (f:<type>); <prefix>all the same since the queue began, plus ms:<type> (the sum
-- of durations), never expiring but bounded by the job types. A bucket expires on its own, a
-- day after its hour or 29 days after its day: at most 25 hours and 30 days exist.
local HISTORY_HOUR_MS = 3600000
local HISTORY_DAY_MS = 86400000
local HISTORY_HOUR_KEEP_MS = 86400000
local HISTORY_DAY_KEEP_MS = 29 * 86400000
local HISTORY_LAST_BIN = 53

-- The duration bin of `ms`: bin i holds durations of at most 2^(i/2) ms (bin 52: 18.6 h), the
-- last bin longer ones. Compared as ms^2 <= 2^i, exact for whole milliseconds.
local function duration_bin(ms)
  if ms < 0 then ms = 0 end
  local square, bin, bound = ms * ms, 0, 1
  while bin < HISTORY_LAST_BIN and bound < square do
    bin = bin + 1
    bound = bound * 2
  end
  return bin
end

-- Add a completed job's duration to `took` (job type -> {sum, bins}), to record in a batch.
local function note_duration(took, job_type, ms)
  local t = took[job_type]
  if not t then
    t = {sum = 0, bins = {}}
    took[job_type] = t
  end
  local bin = duration_bin(ms)
  t.bins[bin] = (t.bins[bin] or 0) + 1
  t.sum = t.sum + ms
end

-- HINCRBY a bucket's field; a field's first write (so the bucket's first) sets its expiry,
-- which costs one EXPIREAT per new field rather than one per call.
local function history_add(key, field, n, expire_s)
  if redis.call('HINCRBY', key, field, n) == n then redis.call('EXPIREAT', key, expire_s) end
end

-- The hour and day buckets of `now` (ms), their expiry times (s) and the minute in the hour.
local function history_buckets(prefix, now)
  local hour = math.floor(now / HISTORY_HOUR_MS)
  local day = math.floor(now / HISTORY_DAY_MS)
  return prefix .. 'h:' .. hour, prefix .. 'd:' .. day,
    math.floor(((hour + 1) * HISTORY_HOUR_MS + HISTORY_HOUR_KEEP_MS) / 1000),
    math.floor(((day + 1) * HISTORY_DAY_MS + HISTORY_DAY_KEEP_MS) / 1000),
    math.floor(now / 60000) % 60
end

-- Record `count` completions at `now` with their durations `took` (see note_duration).
local function history_completed(prefix, now, count, took)
  local hkey, dkey, hexp, dexp, minute = history_buckets(prefix, now)
  history_add(hkey, 'c' .. minute, count, hexp)
  for job_type, t in pairs(took) do
    for bin, n in pairs(t.bins) do
      local field = 'd:' .. job_type .. ':' .. bin
      history_add(hkey, field, n, hexp)
      history_add(dkey, field, n, dexp)
      redis.call('HINCRBY', prefix .. 'all', field, n)
    end
    redis.call('HINCRBY', prefix .. 'all', 'ms:' .. job_type, t.sum)
  end
end

-- Record `count` failed attempts at `now`, `failed` mapping job type -> count.
local function history_failed(prefix, now, count, failed)
  local hkey, dkey, hexp, dexp, minute = history_buckets(prefix, now)
  history_add(hkey, 'f' .. minute, count, hexp)
  for job_type, n in pairs(failed) do
    history_add(dkey, 'f:' .. job_type, n, dexp)
    redis.call('HINCRBY', prefix .. 'all', 'f:' .. job_type, n)
  end
end

