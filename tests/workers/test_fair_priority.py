"""Fair priority: a flood of long low-priority jobs cannot keep an urgent job waiting."""

from __future__ import annotations

import asyncio

import pytest

from docworkers.errors import ConfigurationError
from docworkers.queue import Job, JobStatus, RedisJobRepository
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


async def test_urgent_job_starts_while_low_priority_flood_runs(repo: RedisJobRepository) -> None:
    release = asyncio.Event()
    started: list[str] = []

    async def handler(job: Job, ctx: JobContext) -> str:
        started.append(job.payload["kind"])
        if job.payload["kind"] == "bulk":
            await release.wait()  # long low-priority work
        return job.payload["kind"]

    for i in range(20):
        await repo.enqueue("t", {"kind": "bulk", "i": i}, priority=0)
    config = WorkerConfig(worker_name="fair", concurrency=3, urgent_slots=1,
                          urgent_priority=100, poll_interval=60)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}):
        while started.count("bulk") < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert started.count("bulk") == 2  # the third slot stays free for urgent work
        urgent = await repo.enqueue("t", {"kind": "urgent"}, priority=500)

        async def finished() -> Job:
            while (job := await repo.get_job(urgent)).status != JobStatus.COMPLETED:
                await asyncio.sleep(0.01)
            return job

        done = await asyncio.wait_for(finished(), 10)  # poll_interval is 60 s: a push wake-up
        assert done.result == "urgent"
        assert started.count("bulk") == 2  # still only two bulk jobs running
        release.set()


async def test_without_reserved_slots_the_flood_takes_every_slot(repo: RedisJobRepository
                                                                 ) -> None:
    """The control: the same flood with urgent_slots=0 occupies all slots."""
    release = asyncio.Event()
    running = 0

    async def handler(job: Job, ctx: JobContext) -> None:
        nonlocal running
        running += 1
        await release.wait()

    for i in range(20):
        await repo.enqueue("t", {"i": i})
    config = WorkerConfig(worker_name="greedy", concurrency=3, poll_interval=60)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}):
        async def all_slots_taken() -> None:
            while running < 3:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(all_slots_taken(), 10)
        stats = await repo.stats()
        assert running == 3  # every slot runs a flood job: none is kept for urgent work
        assert (stats.by_status["processing"], stats.by_status["queued"]) == (3, 17)
        release.set()


def test_urgent_slots_must_leave_room_for_ordinary_jobs() -> None:
    with pytest.raises(ConfigurationError, match="urgent_slots"):
        WorkerConfig(worker_name="w", concurrency=2, urgent_slots=2)
