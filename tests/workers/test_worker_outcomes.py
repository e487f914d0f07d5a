"""A worker's published numbers say what the queue's counts say: each finished attempt is
counted by the status it left its job in, so a retried attempt is not a failure, and the
worker's failed and dead match the queue's failed and dead jobs (the dashboard's tiles)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from docworkers.errors import PermanentJobError, RetryableJobError
from docworkers.queue import Job, JobStatus, RedisJobRepository
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


async def handler(job: Job, ctx: JobContext) -> str:
    kind = job.payload["kind"]
    if kind == "flaky" and job.retry_count == 0:
        raise RetryableJobError("the first attempt fails")
    if kind == "broken":
        raise PermanentJobError("never works")
    if kind == "doomed":
        raise RetryableJobError("out of retries")
    return "ok"


async def test_worker_outcomes_match_the_queue_counts(repo: RedisJobRepository,
                                                      invariants: Callable[[], object]) -> None:
    config = WorkerConfig(worker_name="w1", poll_interval=60.0, retry_delay=0.0)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}) as worker:
        ids = [await repo.enqueue("t", {"kind": "ok"}),
               await repo.enqueue("t", {"kind": "flaky"}),
               await repo.enqueue("t", {"kind": "broken"}),
               await repo.enqueue("t", {"kind": "doomed"}, max_retries=0)]

        async def finished() -> None:
            while any(not job.is_terminal for job in await repo.get_jobs(ids)):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(finished(), 30)
        await worker.heartbeat.beat()
        (published,) = (await repo.stats()).workers
        queue = await repo.stats()
    assert [job.status for job in await repo.get_jobs(ids)] == [
        JobStatus.COMPLETED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.DEAD]
    assert published["outcomes"] == {"completed": 2, "retrying": 1, "failed": 1, "dead": 1}
    assert published["jobs_failed"] == 3  # failed attempts, the retried one included
    for status in ("failed", "dead", "completed"):
        assert published["outcomes"][status] == queue.by_status[status], status
    assert published["current_jobs"] == []
    invariants()


async def test_wait_for_outcome_wakes_once_the_outcome_is_stored(repo: RedisJobRepository
                                                                ) -> None:
    """A watcher (``ingest --wait``) waits on the worker instead of sleeping between looks: it
    wakes when an outcome is in Redis (a completion or a recorded failure), not before."""
    config = WorkerConfig(worker_name="w1", poll_interval=60.0, retry_delay=0.0)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}) as worker:
        assert worker.stored_outcomes == 0
        assert not await worker.wait_for_outcome(0, 0.05)  # nothing ran: it times out
        for kind, status in (("ok", JobStatus.COMPLETED), ("broken", JobStatus.FAILED)):
            seen = worker.stored_outcomes
            waiting = asyncio.create_task(worker.wait_for_outcome(seen, 60))
            job_id = await repo.enqueue("t", {"kind": kind})
            assert await asyncio.wait_for(waiting, 30)
            job = await repo.get_job(job_id)
            assert job is not None and job.status == status  # stored before the wake-up
            assert worker.stored_outcomes == seen + 1
        # An outcome stored before the wait began is not missed: it returns at once.
        assert await worker.wait_for_outcome(0, 60)
