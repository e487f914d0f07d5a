-- Release the lock of one logical collection if owner ARGV[3] still holds it and, if a fence
-- is given, the job attempt still holds its fence (an older attempt of the same job must not
-- release the lock the newer one works under).
-- KEYS[1] lock key
-- KEYS[2] optional: the attempt's fence (holds the token of the job's newest attempt)
-- ARGV[1] fencing token ('' without a fence)  ARGV[2] fence ttl ms  ARGV[3] owner id
-- Returns: 1 released; 0 not ours (it expired, and maybe another owner took it);
--          -1 refused by the fence
if KEYS[2] then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
if redis.call('GET', KEYS[1]) == ARGV[3] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
