-- BM25 of given chunks for weighted terms: how hybrid search rescores its candidates with the
-- query expanded by feedback. Same formula as lexical_search.lua, each term's part multiplied
-- by its weight; work bounded by (chunks x terms) hash lookups, whatever the terms' df.
-- KEYS[1] stats (hash: chunks, length)  KEYS[2] chunk records (hash: chunk id ->
--   "<number> <length> ...")  KEYS[3..] postings (hashes: chunk number -> tf + length * 2^16)
-- ARGV[1] k1  ARGV[2] b  ARGV[3] M, the number of chunk ids  ARGV[4 .. 3+M] chunk ids
-- ARGV[4+M ..] the weight of each term, in KEYS[3..] order
-- Returns: one score per chunk id (a string), in ARGV order; 0 for a chunk not indexed or
--   without any of the terms
local stats = redis.call('HMGET', KEYS[1], 'chunks', 'length')
local n = tonumber(stats[1] or '0')
local m = tonumber(ARGV[3])
local scores = {}
for j = 1, m do scores[j] = 0 end
if n <= 0 or m == 0 then
  for j = 1, m do scores[j] = '0' end
  return scores
end
local avgdl = tonumber(stats[2] or '0') / n
if avgdl <= 0 then avgdl = 1 end
local k1, b = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, slope = k1 * (1 - b), k1 * b / avgdl

local ids = {}
for j = 1, m do ids[j] = ARGV[3 + j] end
local records = redis.call('HMGET', KEYS[2], unpack(ids))
local numbers, slots = {}, {}  -- the indexed chunks' numbers, and their places in ids
for j = 1, m do
  local record = records[j]
  if record then
    numbers[#numbers + 1] = string.match(record, '^(%d+) ')
    slots[#slots + 1] = j
  end
end
if #numbers > 0 then
  for i = 3, #KEYS do
    local df = redis.call('HLEN', KEYS[i])
    local weight = tonumber(ARGV[m + i + 1])
    if df > 0 and weight > 0 then
      local w = math.log(1 + (n - df + 0.5) / (df + 0.5)) * (k1 + 1) * weight
      local values = redis.call('HMGET', KEYS[i], unpack(numbers))
      for x = 1, #numbers do
        local value = values[x]
        if value then
          local p = tonumber(value)
          local tf = p % 65536
          local j = slots[x]
          scores[j] = scores[j] + w * tf / (tf + base + slope * (p - tf) / 65536)
        end
      end
    end
  end
end
for j = 1, m do scores[j] = string.format('%.17g', scores[j]) end
return scores
