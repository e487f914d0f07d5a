"""Worker hooks, the retry policy and the typed Failure, against a real Redis server."""

from __future__ import annotations

from typing import Any

import redis
from test_worker import wait_status

from docworkers.errors import (
    CircuitOpenError,
    InvalidPayloadError,
    RateLimitedError,
    RetryableJobError,
)
from docworkers.queue import Failure, FailureKind, Job, JobStatus, RedisJobRepository
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig, WorkerStats
from docworkers.workers.backoff import backoff_delay
from docworkers.workers.hooks import Hooks, JobRefused, WorkerHook
from docworkers.workers.retries import failure_of
from docworkers.workers.standard_hooks import DeferRefusedCalls, ServiceStates, default_hooks


def config(**kw: Any) -> WorkerConfig:
    kw.setdefault("poll_interval", 60.0)  # long: an idle worker must be woken, not poll
    kw.setdefault("retry_delay", 0.0)
    return WorkerConfig(worker_name="hooked", **kw)


class Recorder(WorkerHook):
    def __init__(self, name: str, events: list[str]) -> None:
        self.name = name
        self.events = events

    async def before_job(self, job: Job, ctx: JobContext) -> None:
        self.events.append(f"{self.name}:before:{job.payload['n']}")

    async def after_job(self, job: Job, ctx: JobContext, result: Any,
                        error: BaseException | None) -> None:
        outcome = type(error).__name__ if error is not None else f"result={result}"
        self.events.append(f"{self.name}:after:{outcome}")


async def test_hooks_run_around_process_in_order_whatever_it_ends_with(
        repo: RedisJobRepository, invariants) -> None:
    events: list[str] = []

    async def handler(job: Job, ctx: JobContext) -> int:
        events.append("process")
        if job.payload["n"] == 2:
            raise InvalidPayloadError("n", "two is not allowed")
        return int(job.payload["n"])

    hooks = [Recorder("a", events), Recorder("b", events)]
    async with FunctionWorker(config(concurrency=1), job_repo=repo, handlers={"t": handler},
                              hooks=hooks):
        first = await repo.enqueue("t", {"n": 1})
        await wait_status(repo, first, JobStatus.COMPLETED)
        second = await repo.enqueue("t", {"n": 2})
        await wait_status(repo, second, JobStatus.FAILED)
    assert events == [
        "a:before:1", "b:before:1", "process", "b:after:result=1", "a:after:result=1",
        "a:before:2", "b:before:2", "process", "b:after:InvalidPayloadError",
        "a:after:InvalidPayloadError",
    ]
    invariants()


class RefuseOnce(WorkerHook):
    """Refuses each job the first time it sees it, as a limit without a permit would."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.after: list[str] = []

    async def before_job(self, job: Job, ctx: JobContext) -> None:
        if job.id not in self.seen:
            self.seen.add(job.id)
            raise JobRefused(RateLimitedError("test-limit", 0.0, "no permit"), 0.0)

    async def after_job(self, job: Job, ctx: JobContext, result: Any,
                        error: BaseException | None) -> None:
        self.after.append(job.id)


async def test_a_refused_job_is_deferred_without_an_attempt_or_a_count(
        repo: RedisJobRepository, invariants, clean_redis: redis.Redis) -> None:
    ran: list[int] = []

    async def handler(job: Job, ctx: JobContext) -> str:
        ran.append(job.retry_count)
        return "ok"

    hook = RefuseOnce()
    worker = FunctionWorker(config(), job_repo=repo, handlers={"t": handler}, hooks=[hook])
    async with worker:
        job_id = await repo.enqueue("t", {}, max_retries=0)
        job = await wait_status(repo, job_id, JobStatus.COMPLETED)
        stats = worker.stats()
    assert ran == [0] and job.retry_count == 0  # refused untried: no attempt used
    assert hook.after == [job_id]  # after_job only where before_job returned
    assert (stats.jobs_processed, stats.jobs_failed) == (1, 0)  # the refusal is not counted
    assert clean_redis.hget(repo.keys.stats, "deferred") == "1"
    invariants()


async def test_deferral_of_refused_calls_is_a_hook(repo: RedisJobRepository) -> None:
    """With the default hooks an open breaker defers the job; without them the refusal is an
    ordinary retryable failure that uses the job's only attempt."""

    calls: dict[str, int] = {}

    async def handler(job: Job, ctx: JobContext) -> str:
        calls[job.id] = calls.get(job.id, 0) + 1
        if calls[job.id] == 1:  # refused the first time, as by a breaker still open
            raise CircuitOpenError("test-service", 0.0)
        return "ok"

    async with FunctionWorker(config(), job_repo=repo, handlers={"t": handler}):
        deferred = await repo.enqueue("t", {}, max_retries=0)
        done = await wait_status(repo, deferred, JobStatus.COMPLETED)
    assert done.retry_count == 0 and calls[deferred] == 2
    async with FunctionWorker(config(), job_repo=repo, handlers={"t": handler}, hooks=[]):
        spent = await repo.enqueue("t", {}, max_retries=0)
        dead = await wait_status(repo, spent, JobStatus.DEAD)
    assert calls[spent] == 1
    assert dead.error is not None and dead.error.code == CircuitOpenError.code


async def test_service_states_hook_publishes_breakers_and_refusals() -> None:
    stats = WorkerStats("w", 0, 0, 0, 0.0, None, 0.0, False)
    hooks = Hooks([ServiceStates()])
    assert Hooks([]).adjust_stats(stats) is stats
    published = hooks.adjust_stats(stats)
    assert isinstance(published.breakers, dict) and isinstance(published.limited, dict)


async def test_hooks_without_before_or_after_cost_nothing_per_job(
        repo: RedisJobRepository) -> None:
    hooks = Hooks(default_hooks(config(), repo))
    assert [type(h) for h in hooks.all] == [DeferRefusedCalls, ServiceStates]
    assert hooks.around == ()  # the job loop calls process() directly
    limited = Hooks(default_hooks(config(max_running=2), repo))
    assert len(limited.around) == 1


def test_the_retry_policy_names_what_the_queue_does() -> None:
    exact = config(retry_delay=2.0, retry_delay_cap=5.0, retry_jitter=False)
    failure = failure_of(RetryableJobError("flaky"), attempt=2, config=exact)
    assert (failure.kind, failure.delay) == (FailureKind.RETRY, 4.0)  # 2 · 2^(2-1), no jitter
    assert failure.delay == backoff_delay(2, base=2.0, cap=5.0, jitter=None)
    assert failure.error.code == RetryableJobError.code and "flaky" in failure.error.message
    assert failure.error.traceback is not None
    capped = failure_of(RuntimeError(), attempt=9, config=exact)
    assert (capped.kind, capped.delay, capped.error.message) == (FailureKind.RETRY, 5.0,
                                                                 "RuntimeError")
    final = failure_of(InvalidPayloadError("n", "bad"), attempt=1, config=exact)
    assert final.kind is FailureKind.FINAL
    job = Job("j", "t", JobStatus.PROCESSING, {})
    busy = RateLimitedError("x", 0.0, "busy")
    refused = DeferRefusedCalls().adjust_failure(job, busy,
                                                 failure_of(busy, attempt=1, config=exact))
    assert (refused.kind, refused.delay) == (FailureKind.DEFER, 0.05)  # never a busy loop
    assert DeferRefusedCalls().adjust_failure(job, InvalidPayloadError("n", "x"),
                                              final) is final
    assert Failure.cancelled().kind is FailureKind.CANCEL
