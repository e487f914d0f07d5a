"""Running a queue by hand on a real Redis: pause and resume (with a real worker), run a waiting
job now, and retry or delete dead jobs by filter. No sleeps decide an outcome: the tests wait
for states they can observe (a drained wake-up list, a job's status)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from job_waits import until_async

from docworkers.errors import InvalidStateError, JobNotFoundError
from docworkers.queue import Failure, Job, JobErrorInfo, JobStatus, RedisJobRepository
from docworkers.queue.dead_filter import DeadLetterFilter
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


async def statuses(repo: RedisJobRepository, ids: list[str]) -> list[JobStatus]:
    return [job.status for job in await repo.get_jobs(ids)]


async def test_a_paused_queue_keeps_its_jobs_until_resumed(
        repo: RedisJobRepository, clean_redis: redis.Redis, invariants: Any) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    ran: list[str] = []

    async def handler(job: Job, ctx: JobContext) -> str:
        ran.append(job.id)
        if job.payload.get("slow"):
            started.set()
            await release.wait()
        return "ok"

    config = WorkerConfig(worker_name="w1", poll_interval=60.0, concurrency=4)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}) as worker:
        slow = await repo.enqueue("t", {"slow": True})
        await asyncio.wait_for(started.wait(), 20)
        assert [job["id"] for job in worker.stats().current_jobs] == [slow]
        assert await repo.pause() is True
        assert await repo.pause() is False  # already paused: nothing changes
        waiting = [await repo.enqueue("t", {"n": i}) for i in range(5)]
        # The enqueue woke the idle worker; its reservation ran (on the paused queue) and
        # dropped the wake-up tokens, so it reserved, and took nothing.
        await until_async(lambda: _drained(clean_redis, repo))
        release.set()  # the job that was running when the queue paused finishes
        await until_async(lambda: _is(repo, slow, JobStatus.COMPLETED))
        stats = await repo.stats()
        assert stats.paused == [repo.queue]
        assert stats.by_status["queued"] == 5 and stats.by_status["processing"] == 0
        assert await statuses(repo, waiting) == [JobStatus.QUEUED] * 5
        assert ran == [slow] and worker.stats().in_flight == 0
        assert await repo.paused_since() is not None

        assert await repo.resume() is True
        assert await repo.resume() is False
        await until_async(lambda: _all(repo, waiting, JobStatus.COMPLETED))
    assert sorted(ran) == sorted([slow, *waiting])  # every job ran, once
    assert (await repo.stats()).paused == [] and await repo.paused_since() is None
    invariants()


async def test_resuming_wakes_idle_workers(repo: RedisJobRepository,
                                           clean_redis: redis.Redis) -> None:
    await repo.pause()
    for i in range(3):
        await repo.enqueue("t", {"n": i})
    reply = await repo.reserve("w", 10, lease=30)
    assert reply.jobs == []  # paused: nothing reserved ...
    assert clean_redis.llen(repo.keys.intake) == 0  # ... and no token left to wake anyone
    assert await repo.queue_depth() == 0  # autoscaling adds no worker for a paused queue
    await repo.resume()
    assert clean_redis.llen(repo.keys.intake) == 3  # one wake-up per ready job
    assert await repo.queue_depth() == 3
    reply = await repo.reserve("w", 10, lease=30)
    assert len(reply.jobs) == 3


async def test_a_paused_queue_still_recovers_expired_leases_and_promotes_due_jobs(
        repo: RedisJobRepository, invariants: Any) -> None:
    job_id = await repo.enqueue("t", {})
    (job,) = (await repo.reserve("w", 1, lease=0.001)).jobs
    due = await repo.enqueue("t", {}, delay=0.001)
    await repo.pause()
    await asyncio.sleep(0.01)  # let the lease and the delay run out (Redis's clock decides)
    assert (await repo.reserve("w", 10, lease=30)).jobs == []
    recovered = await repo.get_job(job_id)
    assert recovered.status == JobStatus.QUEUED and recovered.retry_count == 1
    assert (await repo.get_job(due)).status == JobStatus.QUEUED
    assert job.id == job_id
    invariants()


async def test_run_now_moves_a_delayed_job_to_the_ready_queue(
        repo: RedisJobRepository, invariants: Any) -> None:
    later = await repo.enqueue("t", {"n": 1}, delay=3600)
    assert [j.id for j in await repo.scheduled_jobs()] == [later]
    assert (await repo.reserve("w", 10, lease=30)).jobs == []
    await repo.run_now(later)
    job = await repo.get_job(later)
    assert job.status == JobStatus.QUEUED and job.run_at is None
    assert await repo.scheduled_jobs() == []
    with pytest.raises(InvalidStateError, match="not waiting for its time"):
        await repo.run_now(later)
    with pytest.raises(JobNotFoundError):
        await repo.run_now("nope")
    (reserved,) = (await repo.reserve("w", 10, lease=30)).jobs
    assert reserved.id == later
    invariants()


async def test_run_now_keeps_a_retrying_jobs_retry_count(repo: RedisJobRepository,
                                                          invariants: Any) -> None:
    retried = await repo.enqueue("t", {})
    delayed = await repo.enqueue("t", {}, delay=3600)
    (job,) = (await repo.reserve("w", 1, lease=30)).jobs
    status = await repo.fail(job.id, job.token,
                             Failure.retry(JobErrorInfo("boom", "boom"), delay=3600))
    assert status == JobStatus.RETRYING
    assert [j.id for j in await repo.scheduled_jobs(JobStatus.RETRYING)] == [retried]
    assert [j.id for j in await repo.scheduled_jobs(JobStatus.QUEUED)] == [delayed]
    await repo.run_now(retried)
    again = await repo.get_job(retried)
    assert again.status == JobStatus.QUEUED and again.retry_count == 1
    assert (await repo.stats()).delayed == 1
    invariants()


async def make_dead(repo: RedisJobRepository, job_type: str, code: str, message: str,
                    payload: dict[str, Any] | None = None) -> str:
    job_id = await repo.enqueue(job_type, payload or {}, max_retries=0)
    (job,) = (await repo.reserve("w", 1, lease=30)).jobs
    assert job.id == job_id
    status = await repo.fail(job.id, job.token, Failure.retry(JobErrorInfo(code, message)))
    assert status == JobStatus.DEAD
    return job_id


async def test_dead_jobs_retried_and_deleted_by_filter(repo: RedisJobRepository,
                                                       invariants: Any) -> None:
    a_timeout = await make_dead(repo, "a", "timeout", "slow server", {"filename": "x.pdf"})
    a_parse = await make_dead(repo, "a", "parse_error", "bad table", {"filename": "Y.PDF"})
    b_timeout = await make_dead(repo, "b", "timeout", "slow again")
    b_other = await make_dead(repo, "b", "encrypted", "password needed")

    def ids(jobs: list[Job]) -> set[str]:
        return {job.id for job in jobs}

    jobs, total = await repo.dead_matching(DeadLetterFilter.of(codes=["timeout"]))
    assert ids(jobs) == {a_timeout, b_timeout} and total == 2
    jobs, total = await repo.dead_matching(DeadLetterFilter.of(text="y.pdf"))
    assert ids(jobs) == {a_parse} and total == 1  # in the payload, any case
    jobs, total = await repo.dead_matching(DeadLetterFilter.of(types=["b"], text="SLOW"))
    assert ids(jobs) == {b_timeout}
    jobs, total = await repo.dead_matching(DeadLetterFilter(), limit=1)
    assert len(jobs) == 1 and total == 4

    assert await repo.retry_dead(DeadLetterFilter.of(codes=["timeout"])) == 2
    assert await statuses(repo, [a_timeout, b_timeout]) == [JobStatus.QUEUED] * 2
    assert await repo.retry_dead(DeadLetterFilter.of(codes=["timeout"])) == 0  # none left

    assert await repo.delete_dead(DeadLetterFilter.of(types=["a"])) == 1
    assert await repo.find_job(a_parse) is None
    assert ids((await repo.dead_matching(DeadLetterFilter()))[0]) == {b_other}
    assert await repo.delete_dead(DeadLetterFilter()) == 1
    assert (await repo.stats()).by_status["dead"] == 0
    invariants()


async def _drained(client: redis.Redis, repo: RedisJobRepository) -> bool:
    return client.llen(repo.keys.intake) == 0


async def _is(repo: RedisJobRepository, job_id: str, status: JobStatus) -> bool:
    return (await repo.get_job(job_id)).status == status


async def _all(repo: RedisJobRepository, ids: list[str], status: JobStatus) -> bool:
    return await statuses(repo, ids) == [status] * len(ids)
