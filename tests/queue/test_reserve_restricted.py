"""Reservations restricted to given job ids (a client that processes only its own jobs on a
shared queue), against a real Redis server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from docworkers.errors import InvalidJobIdError
from docworkers.queue import Job, JobStatus, RedisJobRepository
from docworkers.queue.repository import serving_workers
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


async def _foreign(repo: RedisJobRepository, count: int = 3) -> list[str]:
    return [await repo.enqueue("t", {"foreign": i}, priority=100) for i in range(count)]


async def _untouched(repo: RedisJobRepository, ids: list[str]) -> None:
    for job in await repo.get_jobs(ids):
        assert job.status == JobStatus.QUEUED and job.retry_count == 0, job
        assert job.worker_id is None and job.token == 0


async def test_only_own_jobs_are_reserved_in_priority_then_fifo_order(
        repo: RedisJobRepository, clean_redis: redis.Redis, invariants: Any) -> None:
    foreign = await _foreign(repo)  # higher priority and older: first for any other worker
    own = [await repo.enqueue("t", {"i": i}, priority=priority)
           for i, priority in enumerate([0, 5, 0, 5, -3])]
    mine = repo.restricted_to(own)
    order: list[Any] = []
    while jobs := (await mine.reserve("w", 2, 30)).jobs:
        order += [job.payload["i"] for job in jobs]
    assert order == [1, 3, 0, 2, 4]
    await _untouched(repo, foreign)
    assert clean_redis.zrange(repo.keys.queued, 0, -1) == foreign
    statuses = invariants()
    assert [statuses[job_id] for job_id in own] == ["processing"] * 5


async def test_a_worker_on_the_view_runs_only_its_jobs_and_is_marked_restricted(
        repo: RedisJobRepository, invariants: Any) -> None:
    foreign = await _foreign(repo)
    own = [await repo.enqueue("t", {"i": i}) for i in range(4)]
    mine = repo.restricted_to(own)
    seen: list[str] = []

    async def handler(job: Job, ctx: JobContext) -> str:
        seen.append(job.id)
        return "ok"

    config = WorkerConfig(worker_name="own-only", concurrency=2, poll_interval=60.0)
    async with FunctionWorker(config, job_repo=mine, handlers={"t": handler}):
        listed = await repo.list_workers()
        assert [w["worker_name"] for w in listed] == ["own-only"]
        assert listed[0]["restricted"] is True and serving_workers(listed) == []
        late = await repo.enqueue("t", {"late": True})  # woken by the enqueue, not taken
        own_late = await repo.enqueue("t", {"own late": True})
        mine.allow([own_late])

        async def finished() -> None:
            while any(j.status != JobStatus.COMPLETED for j in await repo.get_jobs(
                    [*own, own_late])):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(finished(), 20)
    assert sorted(seen) == sorted([*own, own_late])
    await _untouched(repo, [*foreign, late])
    assert await repo.list_workers() == []  # a stopped worker unregisters
    invariants()


async def test_an_empty_or_unqueued_restriction_reserves_nothing_but_recovers_leases(
        repo: RedisJobRepository, invariants: Any) -> None:
    foreign = await _foreign(repo, 2)
    stalled = await repo.enqueue("t", {"stalled": True})
    taken = await repo.restricted_to([stalled]).reserve("dead-worker", 1, lease=0.05)
    assert [job.id for job in taken.jobs] == [stalled]
    await asyncio.sleep(0.1)  # the lease runs out
    nothing = repo.restricted_to([])
    assert nothing.job_ids == ()
    assert (await nothing.reserve("w", 10, 30)).jobs == []
    recovered = await repo.get_job(stalled)  # recovery ran for the whole queue
    assert recovered.status == JobStatus.QUEUED and recovered.retry_count == 1
    absent = repo.restricted_to(["no-such-job", foreign[0] + "x"])
    assert (await absent.reserve("w", 10, 30)).jobs == []
    await _untouched(repo, foreign)
    invariants()


async def test_ids_given_twice_are_reserved_once_and_disallowed_ids_not_at_all(
        repo: RedisJobRepository, invariants: Any) -> None:
    first, second = [await repo.enqueue("t", {}) for _ in range(2)]
    mine = repo.restricted_to([first, first, second])
    mine.disallow([second])
    assert mine.job_ids == (first,)
    jobs = (await mine.reserve("w", 10, 30)).jobs
    assert [job.id for job in jobs] == [first]
    assert (await repo.get_job(second)).status == JobStatus.QUEUED
    invariants()


async def test_min_priority_and_the_waiters_one_round_trip_keep_the_restriction(
        repo: RedisJobRepository, invariants: Any) -> None:
    foreign = await _foreign(repo)
    low = await repo.enqueue("t", {}, priority=0)
    urgent = await repo.enqueue("t", {}, priority=50)
    mine = repo.restricted_to([low, urgent])
    only_urgent = await mine.reserve("w", 10, 30, min_priority=10)
    assert [job.id for job in only_urgent.jobs] == [urgent]
    waiter = mine.waiter()
    await waiter.connect()
    try:
        reservation = await waiter.wait_and_reserve(0.1, "w", 10, 30)
    finally:
        await waiter.close()
    assert [job.id for job in reservation.jobs] == [low]
    done, reservation = await mine.complete_and_reserve(
        [(job.id, job.token, None) for job in [*only_urgent.jobs, *reservation.jobs]],
        "w", 10, 30)
    assert done == [True, True] and reservation.jobs == []
    await _untouched(repo, foreign)
    invariants()


async def test_restricting_to_an_invalid_id_is_refused(repo: RedisJobRepository) -> None:
    with pytest.raises(InvalidJobIdError, match="invalid job id 'a b'"):
        repo.restricted_to(["a b"])
