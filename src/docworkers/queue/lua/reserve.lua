-- Reserve up to ARGV[1] ready jobs for a worker, after promoting due delayed jobs and
-- recovering jobs whose lease expired (their worker died or stalled: that counts as an attempt).
-- KEYS[1] job key prefix  KEYS[2] queued  KEYS[3] scheduled  KEYS[4] active (lease expiry)
-- KEYS[5] dead            KEYS[6] sequence  KEYS[7] intake  KEYS[8] stats  KEYS[9] all-jobs
-- KEYS[10] cancelled        KEYS[11] job events prefix
-- KEYS[12] paused flag: while it exists no job is reserved (due jobs are still promoted
--          and expired leases recovered), and the wake-up tokens are dropped
-- KEYS[13] history prefix: a lease that expired is a failed attempt, counted in its minute
--          and day unless the job was being cancelled (_lib.lua)
-- KEYS[14..19] absorb's keys (_lib.lua): the intake is absorbed before anything else, so the
--          jobs pushed there take their place by priority and arrival before any is popped
-- ARGV[1] max jobs  ARGV[2] lease ms  ARGV[3] worker id  ARGV[4] default max_retries
-- ARGV[5] dead-letter cap
-- ARGV[6] lowest priority to take: '' for any job (a worker's capacity kept for urgent jobs
--         takes only jobs of at least that priority)
-- ARGV[7] the job ids to take, separated by spaces: '' for any job; otherwise only those of
--         them that are queued, in queue order (a client that processes only its own jobs).
--         Due delayed jobs are promoted and expired leases recovered for the whole queue.
-- Returns: {due, now, job...}: due = ms time of the next scheduled job, or -1 when there is none
--          or the batch is full (the caller reserves again at once, so it is not looked up);
--          now = the time of the reservation (ms); each job is the values of `fields` below,
--          in that order (docworkers.queue.job.RESERVE_FIELDS; false when absent), read before
--          the reservation except token, which is the new fencing token. The
--          reservation sets status processing, started_at and updated_at now, worker_id
--          ARGV[3], progress 0 and message '', and deletes completed_at. Each reservation and
--          each recovered lease is recorded in the job's events.
-- A lone job absorbed from the intake (an idle worker's pickup) is written straight as reserved
-- when it is first in line (nothing ready before it, this reservation may take it): the same
-- hash, sets and events as queuing it and popping it, without the round through the queue.
-- woken: a wake-up token is in the intake; owed: absorb emptied the intake of new jobs' entries
-- and left the token to this script (pushed below only if jobs are left for another worker).
local _, token, held = absorb(KEYS, 14, true, true)
local woken, owed = token == true, token == 'owed'
local now = now_ms()
local prefix = KEYS[1]

-- The fields returned per job; completed_at is read too (dropped from the row before it is
-- returned), so that it is deleted only from the jobs that have one (an HDEL per job saved).
local fields = {'id', 'type', 'payload', 'priority', 'result', 'error', 'retry_count',
  'max_retries', 'created_at', 'run_at', 'user_id', 'tags', 'token', 'cancel_requested',
  'completed_at'}
local ID, TOKEN, RETURNED = 1, 13, 14

-- The first delayed job: when it is not due yet (or there is none) it is also the next due
-- time returned, as nothing below adds delayed jobs; otherwise the due ones are promoted and
-- the next one is looked up at the end.
local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local next_due = -1
if first[2] then next_due = tonumber(first[2]) end
local due = {}
if next_due >= 0 and next_due <= now then
  due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
  next_due = nil
end
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[3], id)
  local pri = redis.call('HGET', prefix .. id, 'priority')
  if pri then
    if held then held_arrival(KEYS, 14, held) end  -- it arrived before this promotion
    redis.call('HSET', prefix .. id, 'status', 'queued', 'updated_at', now)
    redis.call('ZADD', KEYS[2], ready_score(tonumber(pri), redis.call('INCR', KEYS[6])), id)
  end
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
local lost, lost_by_type = 0, {}  -- failed attempts, for the history
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[4], id)
  local key = prefix .. id
  local h = redis.call('HMGET', key, 'priority', 'retry_count', 'max_retries', 'worker_id',
    'cancel_requested', 'type')
  if h[1] and h[5] == '1' then
    redis.call('HSET', key, 'status', 'cancelled', 'completed_at', now, 'updated_at', now)
    redis.call('ZADD', KEYS[10], now, id)
    record_event(KEYS[11] .. id, {now, 'lease_expired', h[4] or '', 'cancelled'})
  elseif h[1] then
    local retries = tonumber(h[2])
    local max_retries = tonumber(h[3]) or tonumber(ARGV[4])
    local err = cjson.encode({code = 'lease_expired', message = 'worker ' .. (h[4] or '?') ..
      ' stopped renewing its lease before finishing the job (killed, stalled or disconnected)'})
    redis.call('HINCRBY', KEYS[8], 'lease_expired', 1)
    lost = lost + 1
    lost_by_type[h[6]] = (lost_by_type[h[6]] or 0) + 1
    if retries >= max_retries then
      redis.call('HSET', key, 'status', 'dead', 'error', err, 'completed_at', now,
        'updated_at', now)
      redis.call('HINCRBY', KEYS[8], 'dead', 1)
      record_event(KEYS[11] .. id, {now, 'lease_expired', h[4] or '', 'dead'})
      dead_letter(prefix, KEYS[5], KEYS[9], id, now, tonumber(ARGV[5]), KEYS[11])
    else
      if held then held_arrival(KEYS, 14, held) end  -- it arrived before this recovery
      redis.call('HSET', key, 'status', 'queued', 'retry_count', retries + 1, 'error', err,
        'updated_at', now)
      redis.call('HINCRBY', KEYS[8], 'retried', 1)
      record_event(KEYS[11] .. id, {now, 'lease_expired', h[4] or '', 'queued'})
      redis.call('ZADD', KEYS[2], ready_score(tonumber(h[1]), redis.call('INCR', KEYS[6])), id)
    end
  end
end
if lost > 0 then history_failed(KEYS[13], now, lost, lost_by_type) end

local out = {-1, now}
local emptied = false  -- the queue is known to be empty now
local paused = redis.call('EXISTS', KEYS[12]) == 1
local n = tonumber(ARGV[1])
if paused then n = 0 end
local lease_until = now + tonumber(ARGV[2])
-- The reservation event, [now, 'reserved', worker, token, lease until], up to the token.
local reserved_event = '[' .. now .. ',"reserved",' .. json_string(ARGV[3]) .. ','
local leased = {}  -- score/member pairs for the active set, added at the end
-- The held job (see above) is first in line when this reservation takes any job (ARGV[7] '')
-- of its priority and nothing ready scores lower (a promoted or recovered job of a higher
-- priority; an equal one arrived later).
local rest = n  -- jobs still to pop from the queue
if held then
  local first_in_line = false
  if n > 0 and ARGV[7] == '' and (ARGV[6] == '' or tonumber(held[3]) >= tonumber(ARGV[6])) then
    local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if not head[2] then
      first_in_line, emptied = true, true
    else
      first_in_line = tonumber(head[2]) >
        ready_score(tonumber(held[3]), held_arrival(KEYS, 14, held))
    end
  end
  if first_in_line then
    local id, created = held[1], held[7]
    redis.call('HSET', prefix .. id, 'id', id, 'type', held[2], 'payload', held.payload,
      'priority', held[3], 'status', 'processing', 'progress', 0, 'message', '',
      'retry_count', 0, 'max_retries', held[4], 'user_id', held[5], 'tags', held[6],
      'created_at', created, 'started_at', now, 'updated_at', now, 'worker_id', ARGV[3],
      'token', 1)
    record_event(KEYS[11] .. id, reserved_event .. 1 .. ',' .. lease_until .. ']')
    leased[1], leased[2] = lease_until, id
    out[3] = {id, held[2], held.payload, held[3], false, false, '0', held[4], created, false,
      held[5], held[6], 1, false}
    rest = n - 1
  else
    queue_held(KEYS, 14, held)
  end
end
if rest > 0 and not emptied then
  local popped
  if ARGV[7] ~= '' then
    -- Look each given id up rather than scan the queue: other clients' jobs may be many.
    local bound = math.huge
    if ARGV[6] ~= '' then bound = ready_score(tonumber(ARGV[6]), 4398046511103) end
    local ready, seen = {}, {}
    for id in string.gmatch(ARGV[7], '%S+') do
      local score = not seen[id] and tonumber(redis.call('ZSCORE', KEYS[2], id))
      seen[id] = true
      if score and score <= bound then ready[#ready + 1] = {score, id} end
    end
    table.sort(ready, function(a, b) return a[1] < b[1] end)
    popped = {}
    for i = 1, math.min(rest, #ready) do
      redis.call('ZREM', KEYS[2], ready[i][2])
      popped[#popped + 1] = ready[i][2]
      popped[#popped + 1] = 0
    end
  elseif ARGV[6] == '' then
    popped = redis.call('ZPOPMIN', KEYS[2], rest)
    if #popped < 2 * rest then emptied = true end  -- no ZCARD needed below
  else
    popped = {}
    -- Up to the score of the last possible arrival (2^42 - 1) of the lowest priority taken.
    local bound = ready_score(tonumber(ARGV[6]), 4398046511103)
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', bound, 'LIMIT', 0, rest)) do
      redis.call('ZREM', KEYS[2], id)
      popped[#popped + 1] = id
      popped[#popped + 1] = 0
    end
  end
  for i = 1, #popped, 2 do
    local id = popped[i]
    local key = prefix .. id
    local row = redis.call('HMGET', key, unpack(fields))
    if row[ID] then
      local token = tonumber(row[TOKEN] or 0) + 1
      redis.call('HSET', key, 'token', token, 'status', 'processing', 'started_at', now,
        'updated_at', now, 'worker_id', ARGV[3], 'progress', 0, 'message', '')
      if row[RETURNED + 1] then redis.call('HDEL', key, 'completed_at') end
      row[RETURNED + 1] = nil
      record_event(KEYS[11] .. id, reserved_event .. token .. ',' .. lease_until .. ']')
      leased[#leased + 1] = lease_until
      leased[#leased + 1] = id
      row[TOKEN] = token
      out[#out + 1] = row
    end
  end
end
call_chunked('ZADD', KEYS[4], leased)
-- The intake holds at most wake-up tokens now (absorbed above). None are needed while paused
-- or with nothing ready. Jobs absorbed here and left ready are owed one (a worker between two
-- waits missed their entries); a full batch may have left ready jobs behind: one token wakes
-- one more idle worker, whose full batch does the same in turn (a short batch pushes none, so
-- a worker cannot wake itself in a loop).
local full = n > 0 and #out - 2 >= n
if paused or emptied or redis.call('ZCARD', KEYS[2]) == 0 then
  if woken then redis.call('DEL', KEYS[7]) end
elseif not woken and (owed or full) then
  redis.call('RPUSH', KEYS[7], '')
end
if not full then
  if next_due == nil then
    local nxt = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    next_due = -1
    if nxt[2] then next_due = tonumber(nxt[2]) end
  end
  out[1] = next_due
end
return out
