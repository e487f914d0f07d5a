-- Store vectors in the embedding cache, then keep the cache within its entry cap: the entries
-- stored longest ago go first. Storing an entry again rewrites the same value (a vector is a
-- function of its key) and makes it the newest.
-- KEYS[1] index zset (entry id -> time stored, ms)  KEYS[2] prefix of the entry keys (+ id)
-- ARGV[1] now (ms)  ARGV[2] ttl (ms, 0: none)  ARGV[3] max entries
-- ARGV[4], ARGV[5], ... pairs of entry id and vector bytes
-- Returns: the number of entries evicted to keep the cap
local now, ttl, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local key = KEYS[2] .. ARGV[i]
  if ttl > 0 then
    redis.call('SET', key, ARGV[i + 1], 'PX', ttl)
  else
    redis.call('SET', key, ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[1], now, ARGV[i])
end
if ttl > 0 then  -- entries Redis has expired already: only their index members are left
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl))
end
local excess = redis.call('ZCARD', KEYS[1]) - cap
if excess <= 0 then return 0 end
local evicted = 0
while excess > 0 do
  local batch = redis.call('ZPOPMIN', KEYS[1], math.min(excess, 500))
  for i = 1, #batch, 2 do
    redis.call('DEL', KEYS[2] .. batch[i])
    evicted = evicted + 1
  end
  excess = excess - #batch / 2
end
return evicted
