-- Delete every registry entry of a collection, its index and its name; if a fence is given,
-- only while the writing job attempt still holds it.
-- KEYS[1] document hash prefix (ids from the index are appended; same {documents} hash tag)
-- KEYS[2] the collection's index (zset)  KEYS[3] collections (set)
-- KEYS[4] optional: the writing attempt's fence (holds the token of the job's newest attempt)
-- ARGV[1] fencing token ('' without a fence)  ARGV[2] fence ttl ms  ARGV[3] collection
-- Returns: the number of documents deleted; -1 refused by the fence (nothing deleted)
if KEYS[4] then
  if redis.call('GET', KEYS[4]) ~= ARGV[1] then return -1 end
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(ids) do
  redis.call('DEL', KEYS[1] .. id)
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[3])
return #ids
