"""Cluster-wide limits per job type (WorkerConfig.rate_limit / max_running), enforced by
BaseWorker against a real Redis, with two workers sharing each limit. Checks are inequalities
that a correct limiter cannot break, or states held open by the test, never wall-clock guesses.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from job_waits import until_async

from docworkers.errors import ConfigurationError, InvalidPayloadError
from docworkers.queue import Job, JobStatus, RedisJobRepository
from docworkers.queue.rate_limit import concurrency_key, refusals
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig
from docworkers.workers.job_limits import JobLimits, job_limit_name

SLOTS = concurrency_key(job_limit_name("test", "t"))


async def all_in(repo: RedisJobRepository, ids: list[str], status: JobStatus,
                 timeout: float = 30) -> list[Job]:
    async def done() -> bool:
        return all(j.status is status for j in await repo.get_jobs(ids))

    await until_async(done, timeout)
    return await repo.get_jobs(ids)


def workers(repo: RedisJobRepository, handler: Any, count: int = 2,
            **config: Any) -> list[FunctionWorker]:
    config.setdefault("poll_interval", 0.05)
    config.setdefault("retry_delay", 30.0)  # a failed attempt would stall the test visibly
    return [FunctionWorker(WorkerConfig(worker_name=f"limited-{n}", **config), job_repo=repo,
                           handlers={"t": handler}) for n in range(count)]


async def test_max_running_holds_across_two_workers_and_defers_the_rest(
        repo: RedisJobRepository) -> None:
    gate = asyncio.Event()
    running = peak = 0

    async def handler(job: Job, ctx: JobContext) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return int(job.payload["i"])

    before = refusals().get("concurrency:jobs:test:t", 0)
    # max_retries=0: a refusal that used an attempt would leave the job dead.
    ids = [await repo.enqueue("t", {"i": i}, max_retries=0) for i in range(8)]
    a, b = workers(repo, handler, concurrency=3, max_running=2)
    async with a, b:  # 6 slots, 8 jobs, 2 may run
        async def two_running_and_others_refused() -> bool:
            return running == 2 and refusals().get("concurrency:jobs:test:t", 0) > before

        await until_async(two_running_and_others_refused)

        async def one_deferred() -> bool:
            return any(j.status is JobStatus.RETRYING and j.error is not None
                       and j.error.code == "rate_limited" and j.retry_count == 0
                       for j in await repo.get_jobs(ids))

        await until_async(one_deferred)
        assert await repo.client.zcard(SLOTS) == 2
        assert running == 2  # still: the refused jobs never reached the handler
        gate.set()
        done = await all_in(repo, ids, JobStatus.COMPLETED)
        processed = sum(w.stats().jobs_processed for w in (a, b))
        limited = a.stats().limited
    assert peak == 2
    assert sorted(j.result for j in done) == list(range(8))
    assert all(j.retry_count == 0 for j in done)
    assert processed == 8  # refusals are not counted as processed (or failed) jobs
    assert limited["concurrency:jobs:test:t"] > before  # published with the worker's stats
    assert not await repo.client.exists(SLOTS)  # every slot given back


async def test_rate_limit_holds_across_two_workers(repo: RedisJobRepository) -> None:
    rate, jobs = 20.0, 40  # bursts of up to rate (one second's worth), then rate per second
    burst = int(rate)
    starts: list[float] = []

    async def handler(job: Job, ctx: JobContext) -> None:
        seconds, micros = await repo.client.time()  # Redis's clock, the limiter's clock
        starts.append(seconds + micros / 1e6)

    ids = [await repo.enqueue("t", {"i": i}, max_retries=0) for i in range(jobs)]
    seconds, micros = await repo.client.time()
    t0 = seconds + micros / 1e6
    a, b = workers(repo, handler, concurrency=5, rate_limit=rate)
    async with a, b:
        done = await all_in(repo, ids, JobStatus.COMPLETED)
    assert all(j.retry_count == 0 for j in done)
    starts.sort()
    for k, t in enumerate(starts, start=1):  # never more than the limit allows by then
        assert k <= burst + rate * (t - t0) + 1
    assert starts[-1] - t0 >= (jobs - burst - 1) / rate  # and the limit did slow them


async def test_running_slot_is_renewed_and_given_back_however_the_job_ends(
        repo: RedisJobRepository) -> None:
    overlap = running = 0
    gate = asyncio.Event()

    async def handler(job: Job, ctx: JobContext) -> str:
        nonlocal overlap, running
        running += 1
        overlap = max(overlap, running)
        try:
            kind = str(job.payload["kind"])
            if kind == "bad":
                raise InvalidPayloadError("payload.kind: bad on purpose")
            if kind == "cancel":
                while True:
                    await ctx.progress(10, "waiting to be cancelled")
                    await asyncio.sleep(0.02)
            await gate.wait()  # held by the test until its slot's first lease has run out
            return kind
        finally:
            running -= 1

    async def redis_ms() -> int:  # the clock the leases are kept on
        seconds, micros = await repo.client.time()
        return seconds * 1000 + micros // 1000

    # A lease a busy machine renews in time (every 2 s, with 4 s to spare: a 3 s lease was lost
    # once when a benchmark loaded both cores); the job is held past its first expiry.
    a, b = workers(repo, handler, concurrency=2, max_running=1, lease_timeout=6.0)
    async with a, b:
        bad = await repo.enqueue("t", {"kind": "bad"})
        await all_in(repo, [bad], JobStatus.FAILED)
        assert not await repo.client.exists(SLOTS)

        cancel = await repo.enqueue("t", {"kind": "cancel"})
        await all_in(repo, [cancel], JobStatus.PROCESSING)
        await repo.cancel(cancel)
        await all_in(repo, [cancel], JobStatus.CANCELLED)
        assert not await repo.client.exists(SLOTS)

        slow = [await repo.enqueue("t", {"kind": "slow"}, max_retries=0) for _ in range(2)]

        async def one_running() -> bool:
            return running == 1

        await until_async(one_running)
        [(holder, first_expiry)] = await repo.client.zrange(SLOTS, 0, -1, withscores=True)

        async def first_lease_over() -> bool:
            return await redis_ms() > first_expiry

        await until_async(first_lease_over)
        # Past the lease it was given, the holder still has the slot: renewed, its expiry moved
        # (the other worker, asking all along, would have taken an expired slot).
        [(still, expiry)] = await repo.client.zrange(SLOTS, 0, -1, withscores=True)
        assert still == holder and expiry > first_expiry
        assert running == 1 and overlap == 1
        gate.set()
        done = await all_in(repo, slow, JobStatus.COMPLETED)
    assert overlap == 1  # the other job waited for the slot
    assert all(j.retry_count == 0 for j in done)
    assert not await repo.client.exists(SLOTS)


def test_no_limits_no_limiter(repo: RedisJobRepository) -> None:
    assert JobLimits.for_worker(WorkerConfig(worker_name="w"), repo) is None
    limits = JobLimits.for_worker(WorkerConfig(worker_name="w", max_running=2), repo)
    assert limits is not None and limits.queue == "test" and limits.rate_limit is None
    with pytest.raises(ConfigurationError) as info:
        JobLimits.for_worker(WorkerConfig(worker_name="w", rate_limit=1.0), object())
    assert info.value.field == "rate_limit"
    assert job_limit_name("q", "odd type/{x}") == "jobs:q:odd_type__x_"
    assert SLOTS == "dw:{concurrency:jobs:test:t}:holders"
