"""Waiting in the tests: poll a job's record until it reaches a state, or any condition (sync or
async) until it holds, with a timeout that fails the test with TimeoutError rather than hanging
it (a deadline for something stuck, not a speed claim). One copy for every test file instead of a
local poll loop in each."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Return once ``check()`` is true, polling every 10 ms: the tests wait for state that other
    tasks change. TimeoutError after ``timeout`` seconds: a stuck test fails, it does not hang."""
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def until_async(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """``until`` for a predicate that has to await (a Redis read, a job's record): return once
    ``await check()`` is true, polling every 10 ms; TimeoutError after ``timeout`` seconds."""
    async def poll() -> None:
        while not await check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)
