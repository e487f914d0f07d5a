"""The job history (docworkers.queue.history): counted by the scripts that finish jobs, read
back across queues. Real Redis and a real worker running real jobs; the expected minute, day
and duration of each job are read back from what its scripts recorded (started_at,
completed_at, updated_at: Redis's clock), so nothing depends on how long anything took."""

from __future__ import annotations

import asyncio
import math
import random
from importlib import resources
from typing import Any

import pytest
import redis

from docworkers.errors import ConfigurationError, PermanentJobError, RetryableJobError
from docworkers.queue import (
    Failure,
    Job,
    JobErrorInfo,
    JobStatus,
    RedisJobRepository,
    RepositoryConfig,
)
from docworkers.queue.history import (
    BOUNDS_MS,
    DAY_MS,
    ERROR_BOUND,
    HOUR_MS,
    LAST_BIN,
    MAX_DAYS,
    MAX_MINUTES,
    MINUTE_MS,
    Durations,
    HistoryReader,
    bin_value,
    day_expiry,
    duration_bin,
    hour_expiry,
)
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig

LIMIT = 30.0  # seconds an awaited event may take on a loaded machine
ERR = JobErrorInfo("boom", "it broke")
FINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.DEAD}


async def finished(repo: RedisJobRepository, ids: list[str]) -> list[Job]:
    async def poll() -> list[Job]:
        while True:
            jobs = [await repo.get_job(job_id) for job_id in ids]
            if all(job.status in FINAL for job in jobs):
                return jobs
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(poll(), LIMIT)


def ms_field(client: redis.Redis, repo: RedisJobRepository, job_id: str, name: str) -> int:
    value = client.hget(repo.keys.job(job_id), name)
    assert value is not None, f"{job_id} has no {name}"
    return int(float(value))


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


# -- the bins -----------------------------------------------------------------------------------


def test_the_scripts_and_the_reader_put_a_duration_in_the_same_bin(
        clean_redis: redis.Redis) -> None:
    lib = (resources.files("docworkers.queue") / "lua" / "_lib.lua").read_text()
    script = clean_redis.register_script(
        lib + "local out = {} for i, v in ipairs(ARGV) do out[i] = duration_bin(tonumber(v)) "
              "end return out")
    values = [-5, *range(0, 3000), 2**26 - 1, 2**26, 2**26 + 1, 10**9, 10**13]
    assert script(args=values) == [duration_bin(v) for v in values]
    for ms in range(1, 200_000, 7):  # bin i: (2^((i-1)/2), 2^(i/2)] ms
        i = duration_bin(ms)
        assert ms <= BOUNDS_MS[i] and (i == 0 or ms > BOUNDS_MS[i - 1]), (ms, i)
    assert duration_bin(0) == 0 and duration_bin(2**26) == LAST_BIN - 1
    assert duration_bin(2**26 + 1) == LAST_BIN


def test_a_percentile_is_within_the_error_bound() -> None:
    rng = random.Random(16)
    for _ in range(300):
        values = [round(math.exp(rng.uniform(0, math.log(2**26))))
                  for _ in range(rng.randint(1, 60))]
        histogram = Durations.of(_bins(values))
        for q in (0.5, 0.95):
            true = nearest_rank(values, q)
            estimate = histogram.percentile(q)
            assert estimate == bin_value(duration_bin(true))
            assert estimate is not None
            if true > 1:
                assert abs(estimate / true - 1) <= ERROR_BOUND + 1e-12, (true, estimate)
    assert Durations().percentile(0.5) is None


def _bins(values: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for v in values:
        counts[duration_bin(v)] = counts.get(duration_bin(v), 0) + 1
    return counts


def test_no_more_buckets_exist_at_once_than_the_reader_reads() -> None:
    """With the expiry the scripts set (checked against Redis below), at any moment at most
    25 hour buckets and 30 day buckets are alive: the memory bound does not grow with time."""
    rng = random.Random(3)
    for _ in range(2000):
        now_ms = rng.randrange(1_700_000_000_000, 1_900_000_000_000)
        now_s = now_ms / 1000
        hour, day = now_ms // HOUR_MS, now_ms // DAY_MS
        hours = [h for h in range(hour - 60, hour + 1) if hour_expiry(h) > now_s]
        days = [d for d in range(day - 60, day + 1) if day_expiry(d) > now_s]
        assert len(hours) <= 25 and len(days) <= MAX_DAYS
        # and every minute of the last 24 hours, every day of the last 30, is still there
        assert hours[0] <= (now_ms - (MAX_MINUTES - 1) * MINUTE_MS) // HOUR_MS
        assert days[0] <= day - MAX_DAYS + 1


# -- a worker's run -----------------------------------------------------------------------------


async def sleeps(job: Job, ctx: JobContext) -> dict[str, Any]:
    await asyncio.sleep(job.payload["ms"] / 1000)
    return {}


async def refuses(job: Job, ctx: JobContext) -> None:
    raise PermanentJobError("not this one")


async def gives_up(job: Job, ctx: JobContext) -> None:
    raise RetryableJobError("service down")


async def test_a_worker_run_is_counted_in_its_minutes_days_and_duration_bins(
        repo: RedisJobRepository, clean_redis: redis.Redis, invariants: Any) -> None:
    other = repo.for_queue("test.other")  # a second queue, read together with the first
    ok = [await repo.enqueue("sleep", {"ms": ms}) for ms in (0, 3, 8, 15, 30, 60, 90, 150)]
    ok += [await other.enqueue("sleep2", {"ms": ms}) for ms in (5, 40)]
    failed = [await repo.enqueue("refuse", {}) for _ in range(3)]
    dead = [await other.enqueue("give_up", {}, max_retries=0) for _ in range(2)]
    handlers = {"sleep": sleeps, "sleep2": sleeps, "refuse": refuses, "give_up": gives_up}
    config = WorkerConfig(worker_name="w", concurrency=4, poll_interval=0.05, retry_delay=0)
    async with FunctionWorker(config, job_repo=repo, handlers=handlers), \
            FunctionWorker(WorkerConfig(worker_name="w2", concurrency=2, poll_interval=0.05),
                           job_repo=other, handlers=handlers):
        jobs = await finished(repo, ok[:8] + failed) + await finished(other, ok[8:] + dead)
    invariants()
    by_id = {job.id: job for job in jobs}
    assert {by_id[i].status for i in ok} == {JobStatus.COMPLETED}
    assert {by_id[i].status for i in failed} == {JobStatus.FAILED}
    assert {by_id[i].status for i in dead} == {JobStatus.DEAD}

    # What the scripts recorded, on Redis's clock: when each attempt ended and how long it took.
    def owner(job_id: str) -> RedisJobRepository:
        return repo if job_id in ok[:8] + failed else other

    done_at = {i: ms_field(clean_redis, owner(i), i, "completed_at") for i in ok}
    took = {i: done_at[i] - ms_field(clean_redis, owner(i), i, "started_at") for i in ok}
    failed_at = {i: ms_field(clean_redis, owner(i), i, "updated_at") for i in failed + dead}

    history = await HistoryReader.of([repo, other]).read()
    minutes = history.per_minute
    assert len(minutes.processed) == MAX_MINUTES and minutes.step_ms == MINUTE_MS
    expected_processed = [0] * MAX_MINUTES
    expected_failed = [0] * MAX_MINUTES
    for at in [*done_at.values(), *failed_at.values()]:
        expected_processed[(at - minutes.start_ms) // MINUTE_MS] += 1
    for at in failed_at.values():
        expected_failed[(at - minutes.start_ms) // MINUTE_MS] += 1
    assert minutes.processed == expected_processed
    assert minutes.failed == expected_failed

    days = history.per_day
    assert len(days.processed) == MAX_DAYS and days.start_ms % DAY_MS == 0
    expected_days = [0] * MAX_DAYS
    for at in [*done_at.values(), *failed_at.values()]:
        expected_days[(at - days.start_ms) // DAY_MS] += 1
    assert days.processed == expected_days
    assert sum(days.failed) == len(failed) + len(dead)

    assert set(history.by_type) == {"sleep", "sleep2", "refuse", "give_up"}
    for job_type, ids in (("sleep", ok[:8]), ("sleep2", ok[8:])):
        durations = [took[i] for i in ids]
        for window in (history.by_type[job_type].last_24h, history.by_type[job_type].last_30d):
            assert window.bins == Durations.of(_bins(durations)).bins
            for q in (0.5, 0.95):
                assert window.percentile(q) == bin_value(duration_bin(nearest_rank(durations, q)))
    assert history.by_type["refuse"].failed_30d == 3
    assert history.by_type["give_up"].failed_30d == 2
    assert history.by_type["refuse"].last_24h.count == 0

    totals = await HistoryReader.of([repo, other]).totals()
    assert totals.durations["sleep"].sum_ms == sum(took[i] for i in ok[:8])
    assert totals.durations["sleep2"].count == 2
    assert totals.failed == {"refuse": 3, "give_up": 2}

    # Every bucket expires when the layout says: at most 25 hours and 30 days exist.
    keys = {k for k in clean_redis.keys("*") if ":hist:" in k}
    assert {repo.keys.history_all, other.keys.history_all} <= keys
    for key in keys - {repo.keys.history_all, other.keys.history_all}:
        kind, number = key.rsplit(":", 2)[1:]
        expiry = hour_expiry(int(number)) if kind == "h" else day_expiry(int(number))
        assert clean_redis.expiretime(key) == expiry, key
    assert clean_redis.ttl(repo.keys.history_all) == -1  # monotonic totals, bounded by types
    await other.close()


async def test_an_expired_lease_is_a_failed_attempt_but_a_cancellation_or_deferral_is_not(
        repo: RedisJobRepository, clean_redis: redis.Redis) -> None:
    lost = await repo.enqueue("t", {}, max_retries=1)
    cancelled = await repo.enqueue("t", {})
    first = {job.id: job for job in (await repo.reserve("w", 2, 0.05)).jobs}
    await repo.cancel(cancelled)  # running: its expiry ends it as cancelled
    deferred = await repo.enqueue("d", {})
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    assert job.id == deferred
    await repo.fail(job.id, job.token, Failure.defer(ERR, delay=60))
    due = max(int(float(clean_redis.zscore(repo.keys.active, i) or 0)) for i in first)
    while True:  # wait, on Redis's clock, until both leases have expired
        seconds, micros = clean_redis.time()
        if seconds * 1000 + micros // 1000 > due:
            break
        await asyncio.sleep(0.02)
    await repo.reserve("w", 0, 30)  # recovers the expired leases
    assert (await repo.get_job(lost)).status == JobStatus.QUEUED
    assert (await repo.get_job(cancelled)).status == JobStatus.CANCELLED
    history = await HistoryReader.of([repo]).read(minutes=1440, days=1)
    when = ms_field(clean_redis, repo, lost, "updated_at")
    minute = (when - history.per_minute.start_ms) // MINUTE_MS
    assert history.per_minute.failed[minute] == 1 and sum(history.per_minute.failed) == 1
    assert sum(history.per_minute.processed) == 1
    assert history.per_day.failed == [1] and history.per_day.processed == [1]
    assert history.by_type["t"].failed_30d == 1 and "d" not in history.by_type


async def test_the_reader_refuses_windows_it_does_not_keep(repo: RedisJobRepository) -> None:
    reader = HistoryReader.of([repo])
    for minutes, days in ((0, 1), (MAX_MINUTES + 1, 1), (1, 0), (1, MAX_DAYS + 1)):
        with pytest.raises(ConfigurationError):
            await reader.read(minutes=minutes, days=days)
    history = await reader.read(minutes=5, days=2)
    assert history.per_minute.processed == [0] * 5 and history.per_day.failed == [0, 0]
    assert history.by_type == {}
    assert history.per_minute.start_ms + 4 * MINUTE_MS <= history.now_ms
    with pytest.raises(ConfigurationError, match="queues"):
        HistoryReader.of([])


async def test_only_the_queues_given_are_read(redis_url: str,
                                              clean_redis: redis.Redis) -> None:
    mine = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="q"))
    theirs = mine.for_queue("q2")
    try:
        job_id = await theirs.enqueue("t", {})
        job = (await theirs.reserve("w", 1, 30)).jobs[0]
        assert job.id == job_id
        await theirs.complete(job.id, job.token)
        assert (await HistoryReader.of([mine]).read()).by_type == {}
        assert set((await HistoryReader.of([mine, theirs]).read()).by_type) == {"t"}
    finally:
        await mine.close()
