-- Delete a batch of the postings keys of a collection's keyword index and, in the last call,
-- its other keys once no term is left.
-- KEYS[1] terms (set)  KEYS[2] chunk records  KEYS[3] documents' chunk ids  KEYS[4] stats
-- KEYS[5] tokens of writes in several calls  KEYS[6] chunk ids by number
-- KEYS[7..] postings keys to delete
-- ARGV[1] length of the postings key prefix (key = prefix..term)  ARGV[2] '1' the last call
-- Returns: in the last call, the number of chunks the index held, or -1 if terms were added
--   meanwhile (the client deletes those and calls again); else 0
local cut = tonumber(ARGV[1])
for i = 7, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('SREM', KEYS[1], string.sub(KEYS[i], cut + 1))
end
if ARGV[2] ~= '1' then return 0 end
if redis.call('SCARD', KEYS[1]) > 0 then return -1 end
local chunks = redis.call('HLEN', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return chunks
