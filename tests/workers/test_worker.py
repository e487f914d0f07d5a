"""BaseWorker, FunctionWorker and WorkerPool against a real Redis server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from docworkers.errors import (
    ConfigurationError,
    InvalidPayloadError,
    RepositoryConnectionError,
    RetryableJobError,
)
from docworkers.queue import Job, JobStatus, RedisJobRepository
from docworkers.workers import (
    BaseWorker,
    FunctionWorker,
    JobContext,
    Worker,
    WorkerConfig,
    WorkerPool,
)

HERE = Path(__file__).parent


def config(name: str = "w1", **kw: Any) -> WorkerConfig:
    kw.setdefault("poll_interval", 60.0)  # long: an idle worker must be woken, not poll
    kw.setdefault("retry_delay", 0.0)
    return WorkerConfig(worker_name=name, **kw)


async def wait_status(repo: RedisJobRepository, job_id: str, *statuses: JobStatus,
                      timeout: float = 20.0) -> Job:
    async def poll() -> Job:
        while True:
            job = await repo.get_job(job_id)
            if job.status in statuses:
                return job
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(poll(), timeout)


async def test_idle_worker_is_woken_by_enqueue(repo: RedisJobRepository) -> None:
    seen: list[str] = []

    async def handler(job: Job, ctx: JobContext) -> str:
        seen.append(job.id)
        return "ok"

    async with FunctionWorker(config(), job_repo=repo, handlers={"t": handler}) as worker:
        await asyncio.sleep(0.1)  # the worker is now blocked on Redis
        job_id = await repo.enqueue("t", {})
        # poll_interval is 60 s: finishing within the wait proves a push wake-up
        done = await wait_status(repo, job_id, JobStatus.COMPLETED, timeout=10)
        assert worker.is_running()
    assert done.result == "ok" and seen == [job_id]
    assert not worker.is_running()


class Recorder(BaseWorker):
    """A BaseWorker subclass overriding one method, recording concurrency."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running = 0
        self.peak = 0

    async def process(self, job: Job, ctx: JobContext) -> Any:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await ctx.progress(50, "half way")
        await asyncio.sleep(0.05)
        self.running -= 1
        return {"n": job.payload["n"]}


async def test_concurrency_limit_and_stats(repo: RedisJobRepository, invariants,
                                           clean_redis: redis.Redis) -> None:
    ids = [await repo.enqueue("t", {"n": i}) for i in range(12)]
    worker = Recorder(config(concurrency=3), job_repo=repo)
    assert isinstance(worker, Worker)
    assert worker.stats().success_rate == 0.0
    await worker.start()
    for job_id in ids:
        await wait_status(repo, job_id, JobStatus.COMPLETED)
    await worker.heartbeat.beat()  # publish stats now rather than at the next heartbeat
    cluster = await repo.stats()
    stats = worker.stats()
    await worker.stop()
    assert worker.peak == 3
    assert (stats.jobs_processed, stats.jobs_succeeded, stats.jobs_failed) == (12, 12, 0)
    assert stats.success_rate == 1.0 and stats.average_process_time > 0
    assert stats.uptime > 0 and stats.last_job_time is not None
    assert [w["worker_name"] for w in cluster.workers] == ["w1"]
    assert cluster.active_workers == 1
    assert (await repo.stats()).active_workers == 0  # stop() unregisters
    invariants()
    leftover = {k for k in clean_redis.keys("*")
                if not k.endswith(("seq", "stats", "completed", "jobs")) and ":job:" not in k
                and ":events:" not in k  # the completed jobs' events go with their hashes
                and ":hist:" not in k}  # the history buckets expire on their own
    assert leftover == set(), leftover


async def test_retries_with_backoff_then_dead_letter(repo: RedisJobRepository,
                                                     invariants) -> None:
    attempts: list[int] = []

    async def flaky(job: Job, ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        raise RetryableJobError("service down")

    job_id = await repo.enqueue("t", {})
    async with FunctionWorker(config(max_retries=2, retry_delay=0.01), job_repo=repo,
                              handlers={"t": flaky}) as worker:
        dead = await wait_status(repo, job_id, JobStatus.DEAD)
    assert attempts == [1, 2, 3]
    assert dead.error and dead.error.code == "retryable" and "service down" in dead.error.message
    assert worker.stats().jobs_failed == 3
    invariants()


async def test_permanent_error_is_not_retried(repo: RedisJobRepository) -> None:
    calls = 0

    async def bad(job: Job, ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        raise InvalidPayloadError("filename: must not be empty")

    job_id = await repo.enqueue("t", {})
    async with FunctionWorker(config(), job_repo=repo, handlers={"t": bad}):
        failed = await wait_status(repo, job_id, JobStatus.FAILED)
    assert calls == 1 and failed.error and failed.error.code == "invalid_payload"


async def test_unexpected_exception_is_recovered_with_traceback(repo: RedisJobRepository
                                                                ) -> None:
    def deep() -> None:
        raise KeyError("missing")

    retried: list[Job] = []

    async def handler(job: Job, ctx: JobContext) -> str:
        if ctx.attempt == 1:
            deep()
        retried.append(await repo.get_job(job.id))  # the first attempt's error, stored
        return "second time lucky"

    job_id = await repo.enqueue("t", {})
    async with FunctionWorker(config(), job_repo=repo, handlers={"t": handler}) as worker:
        done = await wait_status(repo, job_id, JobStatus.COMPLETED)
        assert worker.is_running()
    assert done.result == "second time lucky" and done.retry_count == 1
    assert done.error is None  # a completed job shows no error (issue 13)
    error = retried[0].error
    assert error and "deep" in (error.traceback or "")


async def test_unknown_job_type_fails_permanently(repo: RedisJobRepository) -> None:
    async def handler(job: Job, ctx: JobContext) -> None:
        return None

    job_id = await repo.enqueue("mystery", {})
    async with FunctionWorker(config(), job_repo=repo, handlers={"t": handler}):
        failed = await wait_status(repo, job_id, JobStatus.FAILED)
    assert failed.error and failed.error.code == "unknown_job_type"
    assert "mystery" in failed.error.message


async def test_without_recovery_an_exception_stops_the_worker(repo: RedisJobRepository) -> None:
    async def crash(job: Job, ctx: JobContext) -> None:
        raise RuntimeError("panic")

    job_id = await repo.enqueue("t", {})
    worker = FunctionWorker(config(enable_recovery=False), job_repo=repo,
                            handlers={"t": crash})
    await worker.start()
    with pytest.raises(RuntimeError, match="panic"):
        await asyncio.wait_for(worker.wait(), 10)
    assert not worker.is_running()
    job = await repo.get_job(job_id)
    assert job.status == JobStatus.PROCESSING  # left to lease recovery, not failed


async def test_graceful_stop_waits_for_running_jobs(repo: RedisJobRepository) -> None:
    started = asyncio.Event()

    async def slow(job: Job, ctx: JobContext) -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "finished"

    job_id = await repo.enqueue("t", {})
    worker = FunctionWorker(config(shutdown_timeout=5), job_repo=repo, handlers={"t": slow})
    await worker.start()
    await asyncio.wait_for(started.wait(), 10)
    await worker.stop()
    assert (await repo.get_job(job_id)).status == JobStatus.COMPLETED


async def test_stop_after_timeout_hands_jobs_back(repo: RedisJobRepository, invariants) -> None:
    started = asyncio.Event()

    async def stuck(job: Job, ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(3600)

    job_id = await repo.enqueue("t", {})
    worker = FunctionWorker(config(shutdown_timeout=0.1), job_repo=repo,
                            handlers={"t": stuck})
    await worker.start()
    await asyncio.wait_for(started.wait(), 10)
    await worker.stop()
    await worker.stop()  # idempotent
    job = await repo.get_job(job_id)
    assert job.status == JobStatus.QUEUED and job.retry_count == 0
    assert worker.stats().jobs_failed == 0  # handed back, not a failure
    invariants()


async def test_cancel_reaches_a_running_handler(repo: RedisJobRepository) -> None:
    started = asyncio.Event()

    async def long(job: Job, ctx: JobContext) -> None:
        started.set()
        for step in range(1000):
            await ctx.progress(step // 10, "working")
            await asyncio.sleep(0.01)

    job_id = await repo.enqueue("t", {})
    async with FunctionWorker(config(), job_repo=repo, handlers={"t": long}):
        await asyncio.wait_for(started.wait(), 10)
        assert await repo.cancel(job_id) == "requested"
        job = await wait_status(repo, job_id, JobStatus.CANCELLED)
    assert job.error and job.error.code == "cancelled"


async def test_job_timeout_is_a_retryable_failure(repo: RedisJobRepository) -> None:
    async def slow(job: Job, ctx: JobContext) -> None:
        await asyncio.sleep(10)

    job_id = await repo.enqueue("t", {}, max_retries=0)
    async with FunctionWorker(config(job_timeout=0.1), job_repo=repo, handlers={"t": slow}):
        job = await wait_status(repo, job_id, JobStatus.DEAD)
    assert job.error and job.error.code == "timeout"


async def test_start_with_redis_down_is_a_clear_error() -> None:
    repo = RedisJobRepository.from_url("redis://127.0.0.1:1/0")
    worker = FunctionWorker(config(), job_repo=repo, handlers={"t": _noop})
    with pytest.raises(RepositoryConnectionError, match="cannot reach Redis"):
        await worker.start()
    assert not worker.is_running()
    await repo.close()


async def _noop(job: Job, ctx: JobContext) -> None:
    return None


async def test_pool_runs_workers_together(repo: RedisJobRepository) -> None:
    pool = WorkerPool()
    pool.add_worker(FunctionWorker(config("a"), job_repo=repo, handlers={"t": _noop}))
    pool.add_worker(FunctionWorker(config("b"), job_repo=repo, handlers={"t": _noop}))
    with pytest.raises(ConfigurationError, match="already in the pool"):
        pool.add_worker(FunctionWorker(config("a"), job_repo=repo, handlers={"t": _noop}))
    ids = [await repo.enqueue("t", {}) for _ in range(20)]
    async with pool:
        assert all(w.is_running() for w in pool.workers)
        for job_id in ids:
            await wait_status(repo, job_id, JobStatus.COMPLETED)
        stats = pool.get_all_stats()
    assert set(stats) == {"a", "b"}
    assert sum(s.jobs_processed for s in stats.values()) == 20
    assert not any(w.is_running() for w in pool.workers)
    removed = await pool.remove_worker("a")
    assert removed.name == "a" and len(pool) == 1


async def test_logs_carry_worker_and_job(repo: RedisJobRepository,
                                         caplog: pytest.LogCaptureFixture) -> None:
    async def bad(job: Job, ctx: JobContext) -> None:
        raise InvalidPayloadError("nope")

    job_id = await repo.enqueue("t", {})
    with caplog.at_level(logging.INFO, logger="docworkers"):
        async with FunctionWorker(config("logger"), job_repo=repo, handlers={"t": bad}):
            await wait_status(repo, job_id, JobStatus.FAILED)
    failure = [r for r in caplog.records if "failed" in r.getMessage()]
    assert failure and failure[0].job_id == job_id and failure[0].worker == "logger"  # type: ignore[attr-defined]
    assert any("started" in r.getMessage() for r in caplog.records)


def _spawn_worker(url: str, name: str, sleep: float, lease: float,
                  log: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "worker_proc.py"), url, "test", name, str(sleep), str(lease),
         *(["log"] if log else [])],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_sigkilled_worker_job_finishes_elsewhere(redis_url: str,
                                                       repo: RedisJobRepository,
                                                       invariants) -> None:
    """A worker process dies with SIGKILL mid-job; its lease expires and another finishes it."""
    job_id = await repo.enqueue("sleep", {})
    victim = _spawn_worker(redis_url, "victim", sleep=60, lease=1.0)
    try:
        assert victim.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(victim.stdout.readline), 30)
        assert line.strip() == f"started {job_id}"
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        victim.kill()
        victim.wait(10)
        assert victim.stdout is not None
        victim.stdout.close()
    rescuer = _spawn_worker(redis_url, "rescuer", sleep=0, lease=5.0)
    try:
        done = await wait_status(repo, job_id, JobStatus.COMPLETED, timeout=30)
    finally:
        rescuer.terminate()
        rescuer.wait(10)
        assert rescuer.stdout is not None
        rescuer.stdout.close()
    assert done.result == {"by": "rescuer"} and done.retry_count == 1
    invariants()


async def test_stale_worker_late_complete_is_rejected(redis_url: str,
                                                      repo: RedisJobRepository) -> None:
    """SIGSTOP a worker past its lease; after SIGCONT its late result must not overwrite."""
    job_id = await repo.enqueue("sleep", {})
    paused = _spawn_worker(redis_url, "paused", sleep=2.5, lease=0.6, log=True)
    try:
        stdout = paused.stdout
        assert stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(stdout.readline), 30)
        assert line.strip() == f"started {job_id}"
        paused.send_signal(signal.SIGSTOP)
        # Its lease expires while it is frozen: wait on Redis's clock, the lease's clock.
        lease_until = await repo.client.zscore(repo.keys.active, job_id)
        assert lease_until is not None

        async def lease_expired() -> None:
            while True:
                seconds, micros = await repo.client.time()
                if seconds * 1000 + micros // 1000 > lease_until:
                    return
                await asyncio.sleep(0.02)

        await asyncio.wait_for(lease_expired(), 30)

        async def quick(job: Job, ctx: JobContext) -> dict[str, str]:
            return {"by": "fresh"}

        async with FunctionWorker(config("fresh", lease_timeout=30), job_repo=repo,
                                  handlers={"sleep": quick}):
            done = await wait_status(repo, job_id, JobStatus.COMPLETED)
        paused.send_signal(signal.SIGCONT)
        # The paused worker wakes, finishes its attempt, and its result is refused: whether a
        # heartbeat saw the takeover first or the fenced completion was rejected, it says so.
        refusals = ("completion rejected by fencing", "lease lost, result dropped")

        async def refused() -> str:
            while True:
                line = await asyncio.to_thread(stdout.readline)
                assert line, "the paused worker's output ended before it was refused"
                if any(refusal in line for refusal in refusals):
                    return line

        assert job_id in await asyncio.wait_for(refused(), 30)
    finally:
        paused.kill()
        paused.wait(10)
        assert paused.stdout is not None
        paused.stdout.close()
    final = await repo.get_job(job_id)
    assert done.result == {"by": "fresh"} and final.result == {"by": "fresh"}
    assert final.token == done.token
