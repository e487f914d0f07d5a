-- Reserve the next physical version of a logical collection for one rebuild attempt: one more
-- than every version reserved before and than the version searches use now, so no two
-- attempts (not even two attempts of one job) ever build into, or drop, the same physical
-- collection. Only while ARGV[3] holds the collection's lock and, if a fence is given, the
-- attempt still holds its fence.
-- KEYS[1] the collection's version counter  KEYS[2] the collection's lock
-- KEYS[3] optional: the writing attempt's fence (holds the token of the job's newest attempt)
-- ARGV[1] fencing token ('' without a fence)  ARGV[2] fence ttl ms  ARGV[3] lock owner
-- ARGV[4] the version searches use now (0: the logical name itself)
-- Returns: the reserved version (>= 1); 0 the lock is not ARGV[3]'s; -1 refused by the fence
if KEYS[3] then
  if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
local version = tonumber(redis.call('GET', KEYS[1]) or '0')
local current = tonumber(ARGV[4])
if current > version then version = current end
version = version + 1
redis.call('SET', KEYS[1], version)
return version
