-- Create or refresh a document's registry entry (status, job, file), keeping its first
-- created_at; if a fence is given, only while the writing job attempt still holds it.
-- KEYS[1] document hash  KEYS[2] the collection's index (zset)  KEYS[3] collections (set)
-- KEYS[4] optional: the writing attempt's fence (holds the token of the job's newest attempt)
-- ARGV[1] fencing token ('' without a fence)  ARGV[2] fence ttl ms
-- ARGV[3] now (epoch seconds)  ARGV[4] document id  ARGV[5] collection
-- ARGV[6..] field, value pairs
-- Returns: the document's fields after the write (HGETALL); 0 if the fence refused it
if KEYS[4] then
  if redis.call('GET', KEYS[4]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
end
redis.call('HSETNX', KEYS[1], 'created_at', ARGV[3])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
return redis.call('HGETALL', KEYS[1])
