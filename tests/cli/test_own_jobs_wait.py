"""``OwnJobs.wait``: a command following its own jobs looks again as soon as its local worker
stores an outcome, instead of sleeping out the poll interval (``ingest --wait``, ``jobs submit
--wait``)."""

from __future__ import annotations

import asyncio

from rich.console import Console

from docworkers.cli.own_jobs import OwnJobs
from docworkers.queue import Job, JobStatus, RedisJobRepository, RepositoryConfig
from docworkers.queue.repository import RestrictedJobRepository
from docworkers.workers import BaseWorker, FunctionWorker, JobContext, WorkerConfig


async def done(job: Job, ctx: JobContext) -> str:
    return "ok"


def local(view: RestrictedJobRepository) -> BaseWorker:
    # A job allowed after its push woke the worker waits for the next poll (as in a bulk import).
    return FunctionWorker(WorkerConfig(worker_name="cli-test", poll_interval=0.5),
                          job_repo=view, handlers={"t": done})


async def test_wait_returns_when_the_local_worker_stores_an_outcome(
        repo: RedisJobRepository) -> None:
    job_id = await repo.enqueue("t", {})
    async with OwnJobs(Console(quiet=True)) as own:
        own.add(repo, [job_id], local)
        assert own.seen() == [0]  # no local worker yet
        await own.tend()  # no live worker: the local one starts
        assert own.processing_here
        # Far longer than the test's time limit: only the stored outcome can end this wait.
        await asyncio.wait_for(own.wait([0], 3600), 30)
        job = await repo.get_job(job_id)
        assert job is not None and job.status == JobStatus.COMPLETED
        assert own.seen() == [1]
        # With nothing left to run, the wait is the poll interval again.
        await own.wait(own.seen(), 0.05)
        assert own.seen() == [1]


async def test_with_two_lanes_an_outcome_on_either_ends_the_wait(
        repo: RedisJobRepository, redis_url: str) -> None:
    """A bulk import follows two queues (the import's and its uploads'), each with its local
    worker: an outcome stored by either ends the wait, and the other worker's wait that was
    cut short leaves that worker answering later waits."""
    other = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test-other"))
    try:
        async with OwnJobs(Console(quiet=True)) as own:
            first, second = await repo.enqueue("t", {}), await other.enqueue("t", {})
            views = [own.add(repo, [first], local), own.add(other, [second], local)]
            await own.tend()  # both lanes start a local worker

            async def until(counts: list[int]) -> None:
                while own.seen() != counts:
                    await own.wait(own.seen(), 3600)

            await asyncio.wait_for(until([1, 1]), 30)
            for lane, view, queue in ((1, views[1], other), (0, views[0], repo)):
                seen = own.seen()
                job_id = await queue.enqueue("t", {})
                view.allow([job_id])
                await asyncio.wait_for(own.wait(seen, 3600), 30)
                job = await queue.get_job(job_id)
                assert job is not None and job.status == JobStatus.COMPLETED
                assert own.seen()[lane] == seen[lane] + 1
    finally:
        await other.close()


async def test_without_a_local_worker_wait_sleeps_the_interval() -> None:
    async with OwnJobs(Console(quiet=True)) as own:
        assert own.seen() == []
        await own.wait([], 0.01)
