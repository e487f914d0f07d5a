-- Make a batch of a document's chunks part of a collection's keyword index (BM25): add or
-- replace the chunks in ARGV (an identical chunk changes nothing) and, in the last call of the
-- write, remove the document's chunks that are not in its new set. If a fence is given, only
-- while the writing job attempt still holds it. Every check comes before the first write: a
-- refused call writes nothing. Postings name a chunk by its number in the collection (short:
-- most of the index's memory is postings); a replaced chunk keeps its number.
-- KEYS[1] chunk records (hash: chunk id -> "<number> <length> <term> <tf> ...")
-- KEYS[2] documents' chunk ids (hash)  KEYS[3] stats (hash: chunks, length, seq)
-- KEYS[4] terms (set)  KEYS[5] tokens of writes in several calls (hash)
-- KEYS[6] chunk ids by number (hash)
-- KEYS[7 .. 6+ARGV[4]] postings (hashes) of the terms the call touches: the client knows those
--   of its new chunks, not those stored for the chunks it replaces or removes; the script
--   names the ones it lacks (writing nothing) and the client calls again with them
-- KEYS[7+ARGV[4]] optional: the writing attempt's fence (holds the token of the job's newest
--   attempt)
-- ARGV[1] fencing token ('' without a fence)  ARGV[2] fence ttl ms  ARGV[3] document id
-- ARGV[4] number of postings keys  ARGV[5] length of the postings key prefix (key = prefix..term)
-- ARGV[6] write token ('' for a write in one call)  ARGV[7] '1' first call of the write
-- ARGV[8] '1' last call of the write  ARGV[9] number M of chunks in this call
-- ARGV[10 .. 9+2M] chunk id, record pairs; a record is "<length> <term> <tf> <term> <tf> ..."
-- ARGV[10+2M ..] in the last call of a write in several calls: all the document's chunk ids
--   (in a write in one call, its chunks are all of them)
-- Returns: {1, chunks added or changed, chunks removed}; {0} refused by the fence;
--   {-1} a newer write of the document started after this one's first call;
--   {-2, term, ...} the postings keys of these terms are missing from KEYS
local nkeys = tonumber(ARGV[4])
local fence = KEYS[7 + nkeys]
if fence and redis.call('GET', fence) ~= ARGV[1] then return {0} end
local doc, token = ARGV[3], ARGV[6]
local first, last = ARGV[7] == '1', ARGV[8] == '1'
if not first and redis.call('HGET', KEYS[5], doc) ~= token then return {-1} end

local cut = tonumber(ARGV[5])
local key_of = {}
for i = 7, 6 + nkeys do key_of[string.sub(KEYS[i], cut + 1)] = KEYS[i] end

-- a record's length, terms and tfs; each record is parsed once per call
local parsed = {}
local function parse(record)
  local found = parsed[record]
  if found then return found[1], found[2], found[3] end
  local length, terms, tfs, i = 0, {}, {}, 0
  for field in string.gmatch(record, '%S+') do
    if i == 0 then length = tonumber(field)
    elseif i % 2 == 1 then terms[#terms + 1] = field
    else tfs[#tfs + 1] = tonumber(field) end
    i = i + 1
  end
  parsed[record] = {length, terms, tfs}
  return length, terms, tfs
end

-- a stored chunk: its number and record, or nil
local function stored_chunk(id)
  local value = redis.call('HGET', KEYS[1], id)
  if not value then return nil, nil end
  local number, record = string.match(value, '^(%d+) (.*)$')
  return number, record
end

-- what changes: chunks put in (with the number and record they replace, if any) and chunks
-- taken out
local m = tonumber(ARGV[9])
local puts, keep = {}, {}
for i = 1, m do
  local id, record = ARGV[8 + 2 * i], ARGV[9 + 2 * i]
  keep[id] = true
  local number, old = stored_chunk(id)
  if old ~= record then puts[#puts + 1] = {id, record, number, old} end
end
if #ARGV > 9 + 2 * m then
  keep = {}
  for i = 10 + 2 * m, #ARGV do keep[ARGV[i]] = true end
end
local listed, member = {}, {}
local stored = redis.call('HGET', KEYS[2], doc)
if stored then
  for id in string.gmatch(stored, '%S+') do
    listed[#listed + 1] = id
    member[id] = true
  end
end
local outs = {}
if last then
  for _, id in ipairs(listed) do
    if not keep[id] then
      local number, old = stored_chunk(id)
      outs[#outs + 1] = {id, number, old}
    end
  end
end

-- every postings key the change touches must be in KEYS
local missing, named = {}, {}
local function need(record)
  if not record then return end
  local _, terms = parse(record)
  for _, term in ipairs(terms) do
    if not key_of[term] and not named[term] then
      named[term] = true
      missing[#missing + 1] = term
    end
  end
end
for _, put in ipairs(puts) do
  need(put[2])
  need(put[4])
end
for _, out in ipairs(outs) do need(out[3]) end
if #missing > 0 then
  table.insert(missing, 1, -2)
  return missing
end

-- the writes
if fence then redis.call('PEXPIRE', fence, ARGV[2]) end
local chunks, length = 0, 0
-- terms given a posting (-> their postings' number, value pairs, written per term at the end:
-- one HSET per term instead of one per posting), terms that lost one
local added, emptied = {}, {}
local function take_out(number, record)
  local len, terms = parse(record)
  for _, term in ipairs(terms) do
    redis.call('HDEL', key_of[term], number)
    emptied[term] = true
  end
  chunks, length = chunks - 1, length - len
end
local function put_in(id, record, number)
  if not number then
    number = redis.call('HINCRBY', KEYS[3], 'seq', 1)
    redis.call('HSET', KEYS[6], number, id)
  end
  local len, terms, tfs = parse(record)
  for j, term in ipairs(terms) do
    local pairs_of = added[term]
    if not pairs_of then
      pairs_of = {}
      added[term] = pairs_of
    end
    pairs_of[#pairs_of + 1] = number
    pairs_of[#pairs_of + 1] = tfs[j] + len * 65536
  end
  redis.call('HSET', KEYS[1], id, number .. ' ' .. record)
  chunks, length = chunks + 1, length + len
end

for _, put in ipairs(puts) do
  if put[4] then take_out(put[3], put[4]) end
  put_in(put[1], put[2], put[3])
end
local gone = {}
for _, out in ipairs(outs) do
  if out[3] then
    take_out(out[2], out[3])
    redis.call('HDEL', KEYS[6], out[2])
    redis.call('HDEL', KEYS[1], out[1])
  end
  gone[out[1]] = true
end

-- the postings, after every HDEL above (a replaced chunk keeps its number), at most 500
-- pairs per HSET (Lua's unpack has a limit)
for term, pairs_of in pairs(added) do
  for first_pair = 1, #pairs_of, 1000 do
    redis.call('HSET', key_of[term],
      unpack(pairs_of, first_pair, math.min(first_pair + 999, #pairs_of)))
  end
end

-- the terms set: the terms with postings
local batch = {}
for term in pairs(added) do
  batch[#batch + 1] = term
  if #batch == 500 then
    redis.call('SADD', KEYS[4], unpack(batch))
    batch = {}
  end
end
if #batch > 0 then redis.call('SADD', KEYS[4], unpack(batch)) end
for term in pairs(emptied) do
  if not added[term] and redis.call('EXISTS', key_of[term]) == 0 then
    redis.call('SREM', KEYS[4], term)
  end
end

-- the document's chunk ids: the stored ones still kept, then the new ones in call order
local ids = {}
for _, id in ipairs(listed) do
  if not gone[id] then ids[#ids + 1] = id end
end
for i = 1, m do
  local id = ARGV[8 + 2 * i]
  if not member[id] then
    ids[#ids + 1] = id
    member[id] = true
  end
end
local joined = table.concat(ids, ' ')
if #ids == 0 then
  redis.call('HDEL', KEYS[2], doc)
elseif joined ~= stored then
  redis.call('HSET', KEYS[2], doc, joined)
end

if first and not last then
  redis.call('HSET', KEYS[5], doc, token)
elseif first or last then
  redis.call('HDEL', KEYS[5], doc)  -- a write in one call also supersedes one under way
end

if chunks ~= 0 then redis.call('HINCRBY', KEYS[3], 'chunks', chunks) end
if length ~= 0 then redis.call('HINCRBY', KEYS[3], 'length', length) end
if tonumber(redis.call('HGET', KEYS[3], 'chunks') or '0') <= 0 then
  redis.call('DEL', KEYS[3], KEYS[6])  -- no chunk left: numbering starts again
end
return {1, #puts, #outs}
