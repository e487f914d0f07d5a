-- BM25 over a collection's keyword index: the k best chunks for a query's terms.
-- idf = ln(1 + (N - df + 0.5) / (df + 0.5)); a chunk's score sums over the query terms
-- idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl)).
-- Bounded work: the candidates are the chunks of the query's rare terms (in at most
-- max(ARGV[4] * N, ARGV[5]) chunks), scored exactly, the common terms' postings of just those
-- candidates included (HMGET). A chunk with only common query terms is no candidate. When every query
-- term is common, the candidates are the chunks of the rarest term, at most ARGV[6] of them
-- (all when its df is at most that; else those an HSCAN meets first).
-- KEYS[1] stats (hash: chunks, length)  KEYS[2] chunk ids by number (hash)
-- KEYS[3..] postings (hashes: chunk number -> tf + length * 2^16) of the query's distinct terms
-- ARGV[1] k  ARGV[2] k1  ARGV[3] b  ARGV[4] share of N above which a term is common, if it is
-- in more than ARGV[5] chunks too  ARGV[6] most candidates taken from a common term
-- ARGV[7..] optional: the weight of each query term, in KEYS[3..] order (default 1; a term's
--   contribution is multiplied by it: how an expanded query weighs its added terms)
-- Returns: chunk id, score (a string), chunk id, score ... best first (ties: by chunk number,
--   the order chunks were first indexed)
local stats = redis.call('HMGET', KEYS[1], 'chunks', 'length')
local n = tonumber(stats[1] or '0')
if n <= 0 then return {} end
local avgdl = tonumber(stats[2] or '0') / n
if avgdl <= 0 then avgdl = 1 end
local k, k1, b = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local limit = math.max(tonumber(ARGV[4]) * n, tonumber(ARGV[5]))
local cap = tonumber(ARGV[6])

local dfs, rare, rarest = {}, false, nil
for i = 3, #KEYS do
  dfs[i] = redis.call('HLEN', KEYS[i])
  if dfs[i] > 0 then
    if dfs[i] <= limit then rare = true end
    if not rarest or dfs[i] < dfs[rarest] then rarest = i end
  end
end
if not rarest then return {} end

local scores, candidates = {}, {}
local base, slope = k1 * (1 - b), k1 * b / avgdl
local function add(number, packed, weight)
  local tf = packed % 65536
  local score = weight * tf / (tf + base + slope * (packed - tf) / 65536)
  local sum = scores[number]
  if sum then
    scores[number] = sum + score
  else
    scores[number] = score
    candidates[#candidates + 1] = number
  end
end
local function weight(df, i)
  return math.log(1 + (n - df + 0.5) / (df + 0.5)) * (k1 + 1) * tonumber(ARGV[i + 4] or '1')
end

local scored = {}
for i = 3, #KEYS do
  local df = dfs[i]
  if df > 0 and (df <= limit or (not rare and i == rarest)) then
    local w, flat = weight(df, i), nil
    if df <= limit or df <= cap then
      flat = redis.call('HGETALL', KEYS[i])
    else
      flat = {}
      local cursor = '0'
      repeat
        local page = redis.call('HSCAN', KEYS[i], cursor, 'COUNT', 1000)
        cursor = page[1]
        for _, field in ipairs(page[2]) do flat[#flat + 1] = field end
      until cursor == '0' or #flat >= 2 * cap
    end
    for j = 1, #flat, 2 do add(flat[j], tonumber(flat[j + 1]), w) end
    scored[i] = true
  end
end
-- the other (common) terms, for the candidates only
local known = #candidates
for i = 3, #KEYS do
  if dfs[i] > 0 and not scored[i] then
    local w = weight(dfs[i], i)
    for start = 1, known, 1000 do
      local slice = {}
      for j = start, math.min(start + 999, known) do slice[#slice + 1] = candidates[j] end
      local values = redis.call('HMGET', KEYS[i], unpack(slice))
      for j, packed in ipairs(slice) do
        if values[j] then add(packed, tonumber(values[j]), w) end
      end
    end
  end
end

-- the best k: a heap whose top is the worst of those kept
local heap = {}
local function worse(x, y)
  local sx, sy = scores[x], scores[y]
  if sx ~= sy then return sx < sy end
  return tonumber(x) > tonumber(y)
end
local function up(i)
  while i > 1 do
    local parent = math.floor(i / 2)
    if not worse(heap[i], heap[parent]) then return end
    heap[i], heap[parent] = heap[parent], heap[i]
    i = parent
  end
end
local function down(i)
  local size = #heap
  while true do
    local left, pick = 2 * i, i
    if left <= size and worse(heap[left], heap[pick]) then pick = left end
    if left + 1 <= size and worse(heap[left + 1], heap[pick]) then pick = left + 1 end
    if pick == i then return end
    heap[i], heap[pick] = heap[pick], heap[i]
    i = pick
  end
end
for _, number in ipairs(candidates) do
  if #heap < k then
    heap[#heap + 1] = number
    up(#heap)
  elseif worse(heap[1], number) then
    heap[1] = number
    down(1)
  end
end
table.sort(heap, function(x, y) return worse(y, x) end)
if #heap == 0 then return {} end
local ids = redis.call('HMGET', KEYS[2], unpack(heap))
local reply = {}
for i, number in ipairs(heap) do
  reply[#reply + 1] = ids[i]
  reply[#reply + 1] = string.format('%.17g', scores[number])
end
return reply
