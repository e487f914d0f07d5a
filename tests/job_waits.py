"""Waiting in the tests: poll a job's record until it reaches a state, or any condition until it
holds, with a timeout that fails the test rather than hanging it (a deadline for something
stuck, not a speed claim)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from docworkers.queue import Job, RedisJobRepository


async def until_job(repo: RedisJobRepository, job_id: str, predicate: Callable[[Job], bool],
                    timeout: float = 120) -> Job:
    """The job once ``predicate`` holds for its record."""
    async def poll() -> Job:
        while not predicate(job := await repo.get_job(job_id)):
            await asyncio.sleep(0.02)
        return job

    return await asyncio.wait_for(poll(), timeout)


async def until_finished(repo: RedisJobRepository, job_id: str, timeout: float = 120) -> Job:
    """The job once it is in a terminal state (completed, failed, dead or cancelled)."""
    return await until_job(repo, job_id, lambda job: job.is_terminal, timeout)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Return once ``check()`` is true, polling every 10 ms; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")
