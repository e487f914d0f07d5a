"""Guarantees that a one-line change could break without any other test noticing.

Each test here was written after a mutation check (docs/mutation-checks.md): the mutation was
made in a copy of the tree, the suite stayed green, and the test below turns it red. Real
Redis throughout; the clocks are Redis's own (due times, leases) and the waits are for events.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis

from docworkers.errors import RetryableJobError
from docworkers.queue import (
    Failure,
    Job,
    JobErrorInfo,
    JobSpec,
    JobStatus,
    RedisJobRepository,
    RepositoryConfig,
)
from docworkers.queue.redis.keys import QueueKeys
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig

LIMIT = 30.0  # seconds an awaited event may take on a loaded machine
ERR = JobErrorInfo("boom", "it broke")


async def redis_ms(repo: RedisJobRepository) -> int:
    seconds, micros = await repo.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def until_due(repo: RedisJobRepository, job_id: str) -> None:
    """Wait, on Redis's clock, until the scheduled job ``job_id`` is due."""
    due = await repo.client.zscore(repo.keys.scheduled, job_id)
    assert due is not None, f"{job_id} is not scheduled"
    while await redis_ms(repo) <= due:
        await asyncio.sleep(0.02)


async def wait_status(repo: RedisJobRepository, job_id: str, *statuses: JobStatus) -> Job:
    async def poll() -> Job:
        while (job := await repo.get_job(job_id)).status not in statuses:
            await asyncio.sleep(0.01)
        return job

    return await asyncio.wait_for(poll(), LIMIT)


def always_fails(job: Job, ctx: JobContext) -> Any:
    raise RetryableJobError("service down")


async def failing_handler(job: Job, ctx: JobContext) -> None:
    always_fails(job, ctx)


# -- retries wait their backoff ------------------------------------------------------------


def scheduled_delay_ms(client: redis.Redis, repo: RedisJobRepository, job_id: str) -> int:
    """How far after the failure the retry was scheduled: run_at - updated_at, both written
    by the one fail script with the same clock reading."""
    run_at, updated_at = client.hmget(repo.keys.job_prefix + job_id, "run_at", "updated_at")
    assert run_at is not None and updated_at is not None
    return int(float(run_at)) - int(float(updated_at))


async def test_a_failed_attempt_is_retried_after_its_exponential_backoff(
        repo: RedisJobRepository, clean_redis: redis.Redis) -> None:
    fresh = await repo.enqueue("t", {})
    third = await repo.enqueue("t", {})
    await repo.get_job(third)  # the intake absorbed: its hash exists to be changed below
    # As if it had failed twice already: its next retry is the third, 2^2 times the base.
    clean_redis.hset(repo.keys.job_prefix + third, "retry_count", 2)
    config = WorkerConfig(worker_name="w", retry_delay=50.0, retry_delay_cap=1000.0,
                          retry_jitter=False, max_retries=5, poll_interval=60)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": failing_handler}):
        await wait_status(repo, fresh, JobStatus.RETRYING)
        await wait_status(repo, third, JobStatus.RETRYING)
    assert scheduled_delay_ms(clean_redis, repo, fresh) == 50_000
    assert scheduled_delay_ms(clean_redis, repo, third) == 200_000
    capped = WorkerConfig(worker_name="w", retry_delay=50.0, retry_delay_cap=60.0,
                          retry_jitter=False, max_retries=5, poll_interval=60)
    again = await repo.enqueue("t", {})
    await repo.get_job(again)
    clean_redis.hset(repo.keys.job_prefix + again, "retry_count", 2)
    async with FunctionWorker(capped, job_repo=repo, handlers={"t": failing_handler}):
        await wait_status(repo, again, JobStatus.RETRYING)
    assert scheduled_delay_ms(clean_redis, repo, again) == 60_000  # the cap


async def test_retry_delays_are_jittered_below_the_backoff(
        repo: RedisJobRepository, clean_redis: redis.Redis) -> None:
    ids = [await repo.enqueue("t", {}) for _ in range(4)]
    config = WorkerConfig(worker_name="w", retry_delay=50.0, max_retries=5, poll_interval=60)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": failing_handler}):
        for job_id in ids:
            await wait_status(repo, job_id, JobStatus.RETRYING)
    delays = [scheduled_delay_ms(clean_redis, repo, job_id) for job_id in ids]
    assert all(0 <= delay <= 50_000 for delay in delays), delays
    # Full jitter: four uniform draws in [0, 50 s] are not all the same (not all 0, not all
    # the ceiling); the odds of a false alarm are below 1e-13.
    assert len(set(delays)) > 1, delays


# -- priority survives a delay or a retry ---------------------------------------------------


async def test_a_delayed_or_retried_job_keeps_its_priority_when_it_becomes_ready(
        repo: RedisJobRepository, invariants: Any) -> None:
    urgent = await repo.enqueue("t", {"n": "urgent"}, priority=10, delay=0.05)
    low = await repo.enqueue("t", {"n": "low"}, priority=0)
    await until_due(repo, urgent)
    order = [j.id for j in (await repo.reserve("w", 1, 30)).jobs]
    assert order == [urgent]  # promoted with its priority, ahead of the older low job
    # The same for a retry: the urgent job fails, is scheduled, comes due again.
    job = await repo.get_job(urgent)
    await repo.fail(urgent, job.token, Failure.retry(ERR, delay=0.05))
    await until_due(repo, urgent)
    assert [j.id for j in (await repo.reserve("w", 1, 30)).jobs] == [urgent]
    assert [j.id for j in (await repo.reserve("w", 1, 30)).jobs] == [low]
    invariants()


# -- a heartbeat with a stale token renews nothing and says so ------------------------------


async def test_a_stale_heartbeat_reports_the_lease_lost_and_renews_nothing(
        repo: RedisJobRepository, clean_redis: redis.Redis) -> None:
    job_id = await repo.enqueue("t", {})
    first = (await repo.reserve("old", 1, 30)).jobs[0]
    await repo.release([(job_id, first.token)])  # e.g. its lease ran out and it was recovered
    second = (await repo.reserve("new", 1, 0.5)).jobs[0]  # a short lease for the new owner
    assert second.token == first.token + 1
    lease_until = clean_redis.zscore(repo.keys.active, job_id)
    lost, cancel = await repo.heartbeat("old", {}, 30, 60, [(job_id, first.token)])
    assert (lost, cancel) == ([job_id], [])
    assert clean_redis.zscore(repo.keys.active, job_id) == lease_until  # not extended
    lost, _ = await repo.heartbeat("new", {}, 30, 60, [(job_id, second.token)])
    assert lost == []  # the owner's heartbeat does renew
    assert clean_redis.zscore(repo.keys.active, job_id) > lease_until


async def test_a_worker_whose_heartbeat_finds_the_lease_lost_stops_that_job(
        repo: RedisJobRepository, clean_redis: redis.Redis) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def endless(job: Job, ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # never calls ctx.progress: only the heartbeat sees
        except asyncio.CancelledError:
            stopped.set()
            raise

    job_id = await repo.enqueue("t", {})
    # One slot: busy with the job, the worker cannot take it back itself when it is released.
    config = WorkerConfig(worker_name="stale", concurrency=1, lease_timeout=0.3,
                          poll_interval=60, shutdown_timeout=1)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": endless}) as worker:
        await asyncio.wait_for(started.wait(), LIMIT)
        token = (await repo.get_job(job_id)).token
        # Another worker takes the job over: handed back and reserved again (token + 1).
        await repo.release([(job_id, token)])
        taken = (await repo.reserve("other", 1, 300)).jobs[0]
        assert taken.token == token + 1
        await asyncio.wait_for(stopped.wait(), LIMIT)  # the next heartbeat stopped it
        assert worker.is_running() and worker.stats().in_flight == 0
    job = await repo.get_job(job_id)
    assert (job.status, job.token, job.worker_id) == (JobStatus.PROCESSING, taken.token,
                                                      "other")


async def test_the_heartbeat_renews_a_running_jobs_lease_so_it_is_not_recovered(
        repo: RedisJobRepository, clean_redis: redis.Redis) -> None:
    """A job that runs for two leases completes on its first attempt: the heartbeat (every
    third of the lease) keeps it ours while lease recovery runs all the time."""
    lease = 1.5
    held = asyncio.Event()

    async def long(job: Job, ctx: JobContext) -> str:
        await held.wait()  # no ctx.progress(): only the heartbeat renews the lease
        return "done"

    job_id = await repo.enqueue("t", {})
    config = WorkerConfig(worker_name="w", concurrency=1, lease_timeout=lease,
                          poll_interval=60)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": long}):
        await wait_status(repo, job_id, JobStatus.PROCESSING)
        until = await redis_ms(repo) + 2 * lease * 1000
        while await redis_ms(repo) < until:
            await repo.reserve("recovery-probe", 0, 30)  # runs lease recovery, takes nothing
            await asyncio.sleep(0.05)
        held.set()
        job = await wait_status(repo, job_id, JobStatus.COMPLETED)
    assert (job.retry_count, job.result) == (0, "done")
    assert not clean_redis.hget(repo.keys.stats, "lease_expired")


# -- cancellation ----------------------------------------------------------------------------


async def test_a_running_job_sees_its_cancellation_at_the_next_heartbeat(
        repo: RedisJobRepository) -> None:
    started = asyncio.Event()

    async def watches_the_flag(job: Job, ctx: JobContext) -> None:
        started.set()
        while not ctx.cancel_requested:  # set by the heartbeat; no ctx.progress() call
            await asyncio.sleep(0.01)
        ctx.check_cancelled()

    job_id = await repo.enqueue("t", {})
    config = WorkerConfig(worker_name="w", lease_timeout=0.3, poll_interval=60)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": watches_the_flag}):
        await asyncio.wait_for(started.wait(), LIMIT)
        assert await repo.cancel(job_id) == "requested"
        job = await wait_status(repo, job_id, JobStatus.CANCELLED)
    assert job.error and job.error.code == "cancelled"


async def test_a_cancelled_job_whose_lease_expires_is_cancelled_not_run_again(
        repo: RedisJobRepository, invariants: Any) -> None:
    job_id = await repo.enqueue("t", {})
    await repo.reserve("dead-worker", 1, 0.05)  # its worker dies: no heartbeat, no report
    assert await repo.cancel(job_id) == "requested"
    lease_until = await repo.client.zscore(repo.keys.active, job_id)
    while await redis_ms(repo) <= lease_until:
        await asyncio.sleep(0.02)
    assert (await repo.reserve("w", 5, 30)).jobs == []  # recovery cancels it instead
    assert (await repo.get_job(job_id)).status == JobStatus.CANCELLED
    invariants()


# -- shutdown hand-back ------------------------------------------------------------------------


async def test_a_handed_back_job_keeps_its_priority(repo: RedisJobRepository) -> None:
    urgent = await repo.enqueue("t", {}, priority=10)
    job = (await repo.reserve("w", 1, 30)).jobs[0]
    mid = await repo.enqueue("t", {}, priority=5)
    assert await repo.release([(job.id, job.token)]) == 1
    assert [j.id for j in (await repo.reserve("w", 1, 30)).jobs] == [urgent]
    again = await repo.get_job(urgent)
    assert again.retry_count == 0  # not counted as an attempt
    assert [j.id for j in (await repo.reserve("w", 1, 30)).jobs] == [mid]


# -- bounded memory ----------------------------------------------------------------------------


async def test_failed_and_cancelled_jobs_are_forgotten_after_their_retention(
        redis_url: str, clean_redis: redis.Redis) -> None:
    repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="ret",
                                                                   failed_retention=0.05))
    try:
        await repo.enqueue("t", {}, job_id="failed-old")
        job = (await repo.reserve("w", 1, 30)).jobs[0]
        await repo.fail(job.id, job.token, Failure.final(ERR))
        await repo.enqueue("t", {}, job_id="cancelled-old")
        await repo.cancel("cancelled-old")
        expired = await redis_ms(repo) + 50
        while await redis_ms(repo) <= expired:
            await asyncio.sleep(0.02)
        await repo.enqueue("t", {}, job_id="new")
        job = (await repo.reserve("w", 1, 30)).jobs[0]
        await repo.fail(job.id, job.token, Failure.final(ERR))  # trimming happens here
        assert await repo.find_job("failed-old") is None
        assert await repo.find_job("cancelled-old") is None
        assert await repo.find_job("new") is not None
        assert clean_redis.zcard(repo.keys.all_jobs) == 1
    finally:
        await repo.close()


async def test_wake_up_tokens_are_capped(redis_url: str, clean_redis: redis.Redis) -> None:
    repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="cap", notify_cap=5))
    try:
        for _ in range(20):  # no worker takes the tokens
            await repo.enqueue("t", {})
        await repo.enqueue_many([JobSpec("t", {}) for _ in range(20)])
        assert 0 < clean_redis.llen(repo.keys.intake) <= 5
    finally:
        await repo.close()


async def test_the_worker_warns_at_start_when_redis_may_evict_jobs(
        repo: RedisJobRepository, clean_redis: redis.Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    old = clean_redis.config_get("maxmemory-policy")["maxmemory-policy"]
    clean_redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level(logging.WARNING):
            async with FunctionWorker(WorkerConfig(worker_name="w", poll_interval=60),
                                      job_repo=repo, handlers={"t": failing_handler}):
                pass
    finally:
        clean_redis.config_set("maxmemory-policy", old)
    assert any("maxmemory-policy=allkeys-lru" in r.getMessage() and "noeviction"
               in r.getMessage() for r in caplog.records), caplog.text


# -- cluster-ready keys ----------------------------------------------------------------------


def test_every_key_name_of_a_queue_carries_its_hash_tag() -> None:
    keys = QueueKeys("orders")
    names = [getattr(keys, name) for name, value in vars(QueueKeys).items()
             if isinstance(value, property)]
    names += [keys.job("j1"), keys.worker("w"), keys.supervisor("s")]
    assert len(names) > 15
    assert all("{orders}" in name for name in names), names


async def test_every_key_written_through_a_jobs_life_carries_the_hash_tag(
        repo: RedisJobRepository, clean_redis: redis.Redis) -> None:
    await repo.create_job("t", {})  # pending
    await repo.enqueue("t", {}, delay=600)  # scheduled
    await repo.enqueue("t", {}, job_id="to-cancel")
    await repo.cancel("to-cancel")  # cancelled
    for _ in range(3):
        await repo.enqueue("t", {}, max_retries=0)
    done, failed, dead = (await repo.reserve("w", 3, 30)).jobs
    await repo.complete(done.id, done.token)
    await repo.fail(failed.id, failed.token, Failure.final(ERR))
    await repo.fail(dead.id, dead.token, Failure.retry(ERR))  # dead-lettered
    await repo.enqueue("t", {})
    running = (await repo.reserve("w", 1, 30)).jobs[0]  # active
    await repo.heartbeat("w", {"worker_name": "w"}, 30, 30, [(running.id, running.token)])
    await repo.publish_supervisor("s", {"processes": 1}, 30)
    written = clean_redis.keys("*")
    assert len(written) >= 15, written
    assert all("{test}" in key for key in written), written
