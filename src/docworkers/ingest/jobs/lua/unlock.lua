-- Release the lock of one logical collection if owner ARGV[1] still holds it.
-- KEYS[1] lock key
-- ARGV[1] owner id
-- Returns: 1 released; 0 not ours (it expired, and maybe another owner took it)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
