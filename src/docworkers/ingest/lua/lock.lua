-- Take (or renew) the lock of one logical collection for owner ARGV[3], for ARGV[4] ms.
-- Re-entrant: the owner that holds it (a rerun of the same job) gets it again, renewed; if a
-- fence is given, only while the job attempt still holds it (an older attempt of the same job
-- can neither take nor renew the lock of the newer one).
-- KEYS[1] lock key (a string holding the owner id, with an expiry)
-- KEYS[2] optional: the attempt's fence (holds the token of the job's newest attempt)
-- ARGV[1] fencing token ('' without a fence)  ARGV[2] fence ttl ms
-- ARGV[3] owner id  ARGV[4] ttl ms  ARGV[5] '1' = renew only: never take a lock we do not hold
-- Returns: 1 held by ARGV[3]; 0 held by another owner (or, when renewing, no longer ours);
--          -1 refused by the fence
if KEYS[2] then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[3] then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
if holder or ARGV[5] == '1' then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
