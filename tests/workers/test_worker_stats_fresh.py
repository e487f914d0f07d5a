"""Published worker stats are at most about a second old (issue 13), not a lease/3 (10 s).

Freshness is judged on Redis's clock (TIME), like every due time in docworkers; the waits poll
state with generous timeouts and never assert how long anything took.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from docworkers.queue import Job, RedisJobRepository
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig

FRESH = 2.0 + 0.5  # the target (stats no older than 2 s) plus slack for a loaded machine


async def redis_time(repo: RedisJobRepository) -> float:
    seconds, micros = await repo.client.time()
    return seconds + micros / 1e6


async def published(repo: RedisJobRepository, until: Any, timeout: float = 30.0
                    ) -> dict[str, Any]:
    """Poll the live workers until the only one's record satisfies ``until``."""
    async def poll() -> dict[str, Any]:
        while True:
            workers = await repo.list_workers()
            if len(workers) == 1 and until(workers[0]):
                return workers[0]
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(poll(), timeout)


def epoch(value: str) -> float:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() is not None  # ISO 8601 with its UTC offset, like jobs' times
    return moment.timestamp()


async def ok(job: Job, ctx: JobContext) -> str:
    return "ok"


async def broken(job: Job, ctx: JobContext) -> str:
    raise ValueError("broken on purpose")


@pytest.mark.parametrize(("handler", "field"), [(ok, "jobs_succeeded"), (broken, "jobs_failed")],
                         ids=["completed", "failed"])
async def test_a_finished_job_shows_in_the_published_stats(repo: RedisJobRepository,
                                                           handler: Any, field: str) -> None:
    # The default 30 s lease: the lease heartbeat alone would publish only every 10 s.
    config = WorkerConfig(worker_name="w1", poll_interval=60.0, max_retries=0)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}):
        job_id = await repo.enqueue("t", {})
        record = await published(repo, lambda w: w["jobs_processed"] == 1)
        now = await redis_time(repo)
        finished = (await repo.get_job(job_id)).completed_at
    assert record[field] == 1 and record["is_running"]
    assert 0 <= now - epoch(record["updated_at"]) <= FRESH
    # The first record that counts the job was published soon after Redis stored its end,
    # not at the next lease heartbeat (both times are Redis's and the worker's own stamps).
    assert finished is not None and epoch(record["updated_at"]) - finished.timestamp() <= FRESH
    assert record["last_job_time"] is not None
    assert epoch(record["last_job_time"]) <= epoch(record["updated_at"])
    assert await repo.list_workers() == []  # stop() withdrew the record


async def test_an_idle_worker_keeps_publishing_its_uptime(repo: RedisJobRepository) -> None:
    config = WorkerConfig(worker_name="w1", poll_interval=60.0)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": ok}):
        start = await redis_time(repo)
        while await redis_time(repo) < start + 2 * FRESH:  # on Redis's clock, not a sleep
            await asyncio.sleep(0.05)
        (record,) = await repo.list_workers()
        now = await redis_time(repo)
    updated, started = epoch(record["updated_at"]), epoch(record["started_at"])
    assert 0 <= now - updated <= FRESH  # published since, with no job and no lease to renew
    assert updated - started >= FRESH  # so not the first heartbeat's "Up 0 ms"
    assert record["uptime"] == pytest.approx(updated - started, abs=0.25)
