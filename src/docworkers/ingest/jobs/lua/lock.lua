-- Take (or renew) the lock of one logical collection for owner ARGV[1], for ARGV[2] ms.
-- Re-entrant: the owner that holds it (a rerun of the same job) gets it again, renewed.
-- KEYS[1] lock key (a string holding the owner id, with an expiry)
-- ARGV[1] owner id  ARGV[2] ttl ms  ARGV[3] '1' = renew only: never take a lock we do not hold
-- Returns: 1 held by ARGV[1]; 0 held by another owner (or, when renewing, no longer ours)
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder or ARGV[3] == '1' then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
