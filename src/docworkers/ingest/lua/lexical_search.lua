-- BM25 over a collection's keyword index: the k best chunks for a query's terms.
-- idf = ln(1 + (N - df + 0.5) / (df + 0.5)); a chunk's score sums over the query terms
-- idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl)).
-- KEYS[1] stats (hash: chunks, length)  KEYS[2..] postings (hashes) of the query's distinct
--   terms; a posting is tf + length * 2^16
-- ARGV[1] k  ARGV[2] k1  ARGV[3] b  ARGV[4] skip terms in more than this share of the chunks
--   (1: none skipped)
-- Returns: chunk id, score (a string), chunk id, score ... best first (ties: by chunk id)
local stats = redis.call('HMGET', KEYS[1], 'chunks', 'length')
local n = tonumber(stats[1] or '0')
if n <= 0 then return {} end
local avgdl = tonumber(stats[2] or '0') / n
if avgdl <= 0 then avgdl = 1 end
local k, k1, b, share = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

local scores, ids = {}, {}
for i = 2, #KEYS do
  local df = redis.call('HLEN', KEYS[i])
  if df > 0 and df <= share * n then
    local idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    local base, slope = k1 * (1 - b), k1 * b / avgdl
    local flat = redis.call('HGETALL', KEYS[i])
    for j = 1, #flat, 2 do
      local id, packed = flat[j], tonumber(flat[j + 1])
      local tf = packed % 65536
      local len = (packed - tf) / 65536
      local score = idf * tf * (k1 + 1) / (tf + base + slope * len)
      local sum = scores[id]
      if sum then
        scores[id] = sum + score
      else
        scores[id] = score
        ids[#ids + 1] = id
      end
    end
  end
end

table.sort(ids, function(x, y)
  local sx, sy = scores[x], scores[y]
  if sx ~= sy then return sx > sy end
  return x < y
end)
local reply = {}
for i = 1, math.min(k, #ids) do
  reply[#reply + 1] = ids[i]
  reply[#reply + 1] = string.format('%.17g', scores[ids[i]])
end
return reply
