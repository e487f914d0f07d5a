"""Jobs that hit an open circuit breaker are retried later, not dead-lettered."""

from __future__ import annotations

import asyncio

from job_waits import until
from manual_clock import ManualClock

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

    # The breaker's own clock, moved by the test: a reset period passes when the test says so,
    # however slowly the machine runs (deferred jobs still come back after reset_timeout).
    clock = ManualClock()
    breaker = CircuitBreaker("test-service-defer", failure_threshold=2, reset_timeout=0.2,
                             clock=clock)

    async def handler(job: Job, ctx: JobContext) -> str:
        return breaker.call_sync(service)

    try:
        # Without deferral every refusal would use an attempt and all six would be dead soon.
        job_ids = [await repo.enqueue("t", {"i": i}, max_retries=4) for i in range(6)]
        config = WorkerConfig(worker_name="w", concurrency=1, retry_delay=0.05,
                              retry_delay_cap=0.1, poll_interval=0.1)
        async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}):
            await until(lambda: breaker.state == CircuitState.OPEN)
            assert calls == 2  # the failures that opened it
            # Open: jobs keep arriving and are refused without calling the service.
            await until(lambda: breaker.stats().rejected_calls >= 6)
            assert calls == 2
            for period in (1, 2):  # two reset periods with the service still down
                clock.now += breaker.reset_timeout
                # The probe failed and opened it again; then it refuses jobs again.
                await until(lambda n=1 + period: breaker.stats().opened_count == n)
                await until(lambda n=6 * (1 + period): breaker.stats().rejected_calls >= n)
            jobs = await repo.get_jobs(job_ids)
            assert not any(j.status == JobStatus.DEAD for j in jobs)  # none used up its tries
            calls_while_open = calls
            service_up = True
            clock.now += breaker.reset_timeout  # the next probe finds the service back

            async def all_done() -> list[Job]:
                while True:
                    found = await repo.get_jobs(job_ids)
                    if all(job.status == JobStatus.COMPLETED for job in found):
                        return found
                    await asyncio.sleep(0.05)

            done = await asyncio.wait_for(all_done(), 30)
        assert [j.result for j in done] == ["stored"] * 6
        assert all(j.retry_count <= 4 for j in done)
        # The breaker kept calls away from the dead service: one probe per reset period.
        assert calls_while_open == 2 + 2
        stats = await repo.stats()
        assert stats.total_dead == 0
    finally:
        breaker.unregister()
