-- Delete finished jobs older than a cutoff (completed, failed, cancelled; dead if asked).
-- KEYS[1] job key prefix  KEYS[2] completed  KEYS[3] failed  KEYS[4] cancelled  KEYS[5] dead
-- KEYS[6] all-jobs  KEYS[7] job events prefix (a job's events go with it)
-- ARGV[1] age ms (jobs finished before now - age go)  ARGV[2] include dead: 1 or 0
-- Returns: number of jobs deleted (at most 100 per collection per call; call until 0)
local cutoff = now_ms() - tonumber(ARGV[1])
local n = 0
local last = 4
if ARGV[2] == '1' then last = 5 end
for k = 2, last do n = n + trim_expired(KEYS[1], KEYS[k], KEYS[6], cutoff, KEYS[7]) end
return n
