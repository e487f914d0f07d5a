-- Claim a job's fence for one attempt: from now on only that attempt's fenced writes pass
-- (document registry, collection locks and aliases; see ingest/fencing.py). Tokens only move
-- forward, so an older attempt can never take the fence back.
-- KEYS[1] the job's fence key (a string: the token of the job's newest attempt)
-- ARGV[1] fencing token of the attempt  ARGV[2] ttl ms
-- Returns: 1 claimed (or already this attempt's, renewed); 0 a newer attempt holds it
local held = tonumber(redis.call('GET', KEYS[1]) or '-1')
local token = tonumber(ARGV[1])
if held > token then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
