-- One slice of a collection's index, keeping the documents in one status: the caller walks an
-- index slice by slice, so Redis is never busy long however many documents there are (there
-- is no index by status; each status is read here rather than sent to the client).
-- KEYS[1] document hash prefix (ids from the index are appended; same {documents} hash tag)
-- KEYS[2] the collection's index (zset scored by creation time)
-- ARGV[1] status  ARGV[2] first rank (newest first, from 0)  ARGV[3] slice length
-- Returns: {scanned, id, score, id, score, ...}: how many entries the slice had (fewer than
-- asked: the index ended) and the matching ids with their creation times
local first, length = tonumber(ARGV[2]), tonumber(ARGV[3])
local ranked = redis.call('ZREVRANGE', KEYS[2], first, first + length - 1, 'WITHSCORES')
local out = {#ranked / 2}
for j = 1, #ranked, 2 do
  if redis.call('HGET', KEYS[1] .. ranked[j], 'status') == ARGV[1] then
    out[#out + 1] = ranked[j]
    out[#out + 1] = ranked[j + 1]
  end
end
return out
