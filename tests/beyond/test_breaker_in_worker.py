"""Jobs that hit an open circuit breaker are retried later, not dead-lettered."""

from __future__ import annotations

import asyncio

from docworkers.errors import RetryableJobError
from docworkers.queue import Job, JobStatus, RedisJobRepository
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig
from docworkers.workers.circuit_breaker import CircuitBreaker, CircuitState


async def test_open_breaker_defers_jobs_without_using_attempts(repo: RedisJobRepository) -> None:
    service_up = False
    calls = 0

    def service() -> str:
        nonlocal calls
        calls += 1
        if not service_up:
            raise RetryableJobError("connection refused")
        return "stored"

    breaker = CircuitBreaker("test-service-defer", failure_threshold=2, reset_timeout=1.0)

    async def handler(job: Job, ctx: JobContext) -> str:
        return breaker.call_sync(service)

    try:
        # Without deferral every refusal would use an attempt and all six would be dead in ~1 s.
        job_ids = [await repo.enqueue("t", {"i": i}, max_retries=4) for i in range(6)]
        config = WorkerConfig(worker_name="w", concurrency=1, retry_delay=0.05,
                              retry_delay_cap=0.1, poll_interval=0.1)
        async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}):
            while breaker.state != CircuitState.OPEN:
                await asyncio.sleep(0.01)
            await asyncio.sleep(2.5)  # two reset periods with the service still down
            jobs = await repo.get_jobs(job_ids)
            assert not any(j.status == JobStatus.DEAD for j in jobs)  # none used up its tries
            calls_while_open = calls
            service_up = True

            async def all_done() -> list[Job]:
                while True:
                    found = await repo.get_jobs(job_ids)
                    if all(job.status == JobStatus.COMPLETED for job in found):
                        return found
                    await asyncio.sleep(0.05)

            done = await asyncio.wait_for(all_done(), 30)
        assert [j.result for j in done] == ["stored"] * 6
        assert all(j.retry_count <= 4 for j in done)
        assert calls_while_open < 15  # the breaker kept calls away from the dead service
        stats = await repo.stats()
        assert stats.total_dead == 0
    finally:
        breaker.unregister()
