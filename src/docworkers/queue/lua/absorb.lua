-- Move the jobs waiting in the intake list into the queue (see absorb in _lib.lua): readers
-- that look at the queue from the client call it first, so a job enqueued through the intake
-- is found, listed and counted at once.
-- KEYS[1..6] absorb's keys: job key prefix, intake, claimed, queued, all-jobs, sequence
-- ARGV: none
-- Returns: the number of jobs created
return (absorb(KEYS, 1))
