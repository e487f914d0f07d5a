"""A job that completes after a failed or deferred attempt shows no error (issue 13): the
earlier attempt's error is history, not the completed job's message."""

from __future__ import annotations

import pytest

from docworkers.queue import Failure, JobErrorInfo, JobStatus, RedisJobRepository
from docworkers.queue.job import Job

DEFERRED = JobErrorInfo("service_unavailable", "circuit breaker 'embedder' is open",
                        stage="embed")


async def _reserve_one(repo: RedisJobRepository) -> Job:
    """Reserve the only job, waiting (on Redis, not a timer) until its retry is due."""
    for _ in range(500):
        jobs = (await repo.reserve("w", 1, 30)).jobs
        if jobs:
            return jobs[0]
        await repo.wait_for_work(0.05)
    raise AssertionError("the job never became ready again")


@pytest.mark.parametrize("failure", [Failure.defer(DEFERRED, 0.0), Failure.retry(DEFERRED, 0.0)],
                         ids=["deferred", "retried"])
async def test_completed_job_has_no_error(repo: RedisJobRepository, invariants,
                                          failure: Failure) -> None:
    job_id = await repo.enqueue("t", {})
    first = await _reserve_one(repo)
    assert await repo.fail(job_id, first.token, failure) == JobStatus.RETRYING
    assert (await repo.get_job(job_id)).error == DEFERRED  # shown while it waits to run again

    second = await _reserve_one(repo)
    await repo.complete(job_id, second.token, {"ok": True})
    job = await repo.get_job(job_id)
    assert job.status == JobStatus.COMPLETED and job.result == {"ok": True}
    assert job.error is None and job.to_dict()["error"] is None
    invariants()


async def test_batched_completion_clears_error_too(repo: RedisJobRepository, invariants) -> None:
    """The acker's path: completion piggy-backed on the next reservation."""
    job_id = await repo.enqueue("t", {})
    first = await _reserve_one(repo)
    await repo.fail(job_id, first.token, Failure.defer(DEFERRED, 0.0))
    second = await _reserve_one(repo)
    oks, _ = await repo.complete_and_reserve([(job_id, second.token, None)], "w", 1, 30)
    assert oks == [True]
    job = await repo.get_job(job_id)
    assert job.status == JobStatus.COMPLETED and job.error is None
    invariants()
