"""Reads of a queue (queue/reads.py): each absorbs the intake in the same round trip as its
read, and still sees the intake's jobs when Redis has lost its scripts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from docworkers.queue import JobStatus, RedisJobRepository, RepositoryConfig


class CountingConnection(aioredis.Connection):
    """A real connection that counts what it sends: one send is one round trip (a pipeline
    goes out in one)."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted(redis_url: str, clean_redis: redis.Redis
                  ) -> AsyncIterator[RedisJobRepository]:
    # A cluster client takes no connection class (its nodes' connections count nothing; the
    # cluster run, test_cluster_suites.py, takes only the test that counts nothing).
    counting = {} if "+cluster" in redis_url else {"connection_class": CountingConnection}
    repository = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test"),
                                             **counting)
    yield repository
    await repository.close()


def pushed_jobs(client: redis.Redis, repo: RedisJobRepository) -> list[str]:
    """The intake's job entries (the empty ones are wake-up tokens for idle workers)."""
    return [entry for entry in client.lrange(repo.keys.intake, 0, -1) if entry]


async def round_trips(call: Any) -> tuple[int, Any]:
    before = CountingConnection.sends
    result = await call
    return CountingConnection.sends - before, result


async def test_each_read_absorbs_the_intake_in_its_own_round_trip(
        counted: RedisJobRepository, clean_redis: redis.Redis, invariants_of: Any) -> None:
    await counted.find_job(await counted.enqueue("t", {"n": 0}))  # connects, loads absorb.lua
    job_id = await counted.enqueue("t", {"n": 1})  # a ready job: one push on the intake
    assert job_id in "".join(clean_redis.lrange(counted.keys.intake, 0, -1))  # not absorbed

    trips, job = await round_trips(counted.find_job(job_id))
    assert trips == 1 and job is not None and job.status == JobStatus.QUEUED
    assert pushed_jobs(clean_redis, counted) == []  # the read absorbed it

    second = await counted.enqueue("t", {"n": 2})
    trips, jobs = await round_trips(counted.get_jobs([job_id, second]))
    assert trips == 1 and [j.id for j in jobs] == [job_id, second]
    third = await counted.enqueue("t", {"n": 3})
    trips, depth = await round_trips(counted.queue_depth())
    assert trips == 1 and depth == 4
    fourth = await counted.enqueue("t", {"n": 4})
    trips, page = await round_trips(counted.page_jobs())
    assert trips == 2 and page.total == 5  # ids and count, then the jobs
    assert {j.id for j in page.jobs} > {fourth, third, second, job_id}  # (same ms: any order)
    await counted.enqueue("t", {"n": 5})
    assert (await counted.stats()).by_status["queued"] == 6
    invariants_of(clean_redis, counted)


async def test_reads_see_the_intake_after_redis_lost_its_scripts(
        counted: RedisJobRepository, clean_redis: redis.Redis, invariants_of: Any) -> None:
    await counted.queue_depth()
    for read in ("find_job", "get_jobs", "queue_depth", "page_jobs", "stats"):
        job_id = await counted.enqueue("t", {"read": read})
        clean_redis.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
        if read == "find_job":
            assert (await counted.find_job(job_id)) is not None
        elif read == "get_jobs":
            assert [j.id for j in await counted.get_jobs([job_id])] == [job_id]
        elif read == "queue_depth":
            assert await counted.queue_depth() == 3
        elif read == "page_jobs":
            assert job_id in {job.id for job in (await counted.page_jobs()).jobs}
        else:
            assert (await counted.stats()).by_status["queued"] == 5
        assert pushed_jobs(clean_redis, counted) == [], read
    invariants_of(clean_redis, counted)
