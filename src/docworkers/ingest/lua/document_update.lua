-- Set fields of an existing document; if a fence is given, only while the writing job
-- attempt still holds it. A missing document is not recreated (it was deleted meanwhile).
-- KEYS[1] document hash
-- KEYS[2] optional: the writing attempt's fence (holds the token of the job's newest attempt)
-- ARGV[1] fencing token ('' without a fence)  ARGV[2] fence ttl ms  ARGV[3..] field, value pairs
-- Returns: 1 written; 0 refused by the fence; -1 no such document (nothing written)
if KEYS[2] then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
