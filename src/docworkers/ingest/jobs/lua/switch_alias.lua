-- Point the alias of a logical collection at another physical collection (or remove it), but
-- only while ARGV[1] holds the collection's lock: a rebuild whose lock expired and was taken
-- over cannot switch the alias under the new owner (fencing).
-- KEYS[1] alias key (a string: the physical collection name)  KEYS[2] lock key
-- ARGV[1] owner id  ARGV[2] physical collection name; '' removes the alias
-- Returns: 1 switched; 0 refused (the lock is not ARGV[1]'s)
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
