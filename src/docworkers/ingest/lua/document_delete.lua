-- Delete a document's registry entry and its place in its collection's index; if a fence is
-- given, only while the writing job attempt still holds it.
-- KEYS[1] document hash  KEYS[2] its collection's index (zset; a document never changes
-- collection: its id is derived from it)
-- KEYS[3] optional: the writing attempt's fence (holds the token of the job's newest attempt)
-- ARGV[1] fencing token ('' without a fence)  ARGV[2] fence ttl ms  ARGV[3] document id
-- Returns: 1 deleted; 0 refused by the fence; -1 no such document
if KEYS[3] then
  if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
if redis.call('DEL', KEYS[1]) == 0 then return -1 end
redis.call('ZREM', KEYS[2], ARGV[3])
return 1
