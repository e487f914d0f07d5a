-- Point the alias of a logical collection at another physical collection (or remove it), but
-- only while ARGV[3] holds the collection's lock (a rebuild whose lock expired and was taken
-- over cannot switch the alias under the new owner) and, if a fence is given, the job attempt
-- still holds its fence (an older attempt of the same job, which owns the same lock, cannot).
-- KEYS[1] alias key (a string: the physical collection name)  KEYS[2] lock key
-- KEYS[3] optional: the attempt's fence (holds the token of the job's newest attempt)
-- ARGV[1] fencing token ('' without a fence)  ARGV[2] fence ttl ms
-- ARGV[3] owner id  ARGV[4] physical collection name; '' removes the alias
-- Returns: 1 switched; 0 refused (the lock is not ARGV[3]'s); -1 refused by the fence
if KEYS[3] then
  if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
if redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return 0
end
if ARGV[4] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[4])
end
return 1
