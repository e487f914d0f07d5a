"""Dynamic concurrency: a worker grows with a backlog, shrinks when idle, slow or short of memory.

The policy is pure and tested on its own; the worker tests run real workers on the real Redis
with jobs whose duration the test controls (an event, or a shared resource of capacity two), so
the signals are real and nothing depends on how fast this machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from job_waits import until

from docworkers.errors import ConfigurationError
from docworkers.queue import Job, JobSpec, RedisJobRepository
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig
from docworkers.workers.autoscale import (
    ConcurrencyController,
    LatencyTracker,
    ScalingSignals,
    resident_memory_mb,
)

# -- the policy -------------------------------------------------------------------------------


def decide(limit: int, in_flight: int, depth: int, **signals: Any) -> tuple[int, str]:
    controller = ConcurrencyController(2, 10, latency_tolerance=2.0, memory_limit_mb=500)
    d = controller.decide(ScalingSignals(limit, in_flight, depth, **signals))
    return d.limit, d.reason


def test_a_backlog_doubles_the_limit_bounded_by_the_maximum_and_the_backlog() -> None:
    assert decide(2, 2, 100) == (4, "backlog")
    assert decide(4, 4, 100) == (8, "backlog")
    assert decide(8, 8, 100) == (10, "backlog")  # not 16: the maximum
    assert decide(10, 10, 100) == (10, "steady")
    assert decide(6, 6, 1) == (7, "backlog")  # one job waits: one more slot is enough


def test_free_slots_or_an_empty_queue_do_not_grow_it() -> None:
    assert decide(4, 2, 100) == (4, "steady")  # slots free: the fetch loop is catching up
    assert decide(4, 4, 0) == (4, "steady")  # all busy, nothing waits


def test_idle_shrinks_one_step_at_a_time_down_to_the_minimum() -> None:
    assert decide(5, 1, 0) == (4, "idle")
    assert decide(2, 0, 0) == (2, "steady")


def test_slow_jobs_shrink_it_and_stop_growth() -> None:
    assert decide(6, 6, 100, latency=0.5, best_latency=0.2) == (5, "latency")
    assert decide(2, 2, 100, latency=0.5, best_latency=0.2) == (2, "steady")  # at the minimum
    assert decide(4, 4, 100, latency=0.39, best_latency=0.2) == (8, "backlog")  # within 2x


def test_high_memory_halves_it_before_anything_else() -> None:
    assert decide(9, 9, 100, rss_mb=600.0) == (4, "memory")
    assert decide(3, 3, 100, rss_mb=600.0) == (2, "memory")
    assert decide(3, 3, 100, rss_mb=400.0) == (6, "backlog")


def test_latency_tracker_waits_for_a_few_jobs_before_setting_the_bar() -> None:
    tracker = LatencyTracker(alpha=0.5, warmup=3)
    tracker.record(0.1)
    tracker.record(0.1)
    assert tracker.latency is None and tracker.best is None
    tracker.record(0.4)
    assert tracker.latency == pytest.approx(0.25) and tracker.best == pytest.approx(0.25)
    tracker.record(0.05)
    assert tracker.best == pytest.approx(0.15)
    tracker.record(1.0)
    assert tracker.latency == pytest.approx(0.575) and tracker.best == pytest.approx(0.15)


def test_resident_memory_is_plausible() -> None:
    assert 10 < resident_memory_mb() < 20_000


@pytest.mark.parametrize(("options", "field"), [
    ({"min_concurrency": 0}, "min_concurrency"),
    ({"min_concurrency": 9}, "min_concurrency"),
    ({"min_concurrency": 2, "urgent_slots": 2}, "urgent_slots"),
    ({"min_concurrency": 2, "scale_interval": 0}, "scale_interval"),
    ({"min_concurrency": 2, "latency_tolerance": 0.5}, "latency_tolerance"),
    ({"min_concurrency": 2, "memory_limit_mb": -1}, "memory_limit_mb"),
])
def test_invalid_autoscaling_settings_name_the_field(options: dict[str, Any], field: str
                                                     ) -> None:
    with pytest.raises(ConfigurationError, match=field):
        WorkerConfig(worker_name="w", concurrency=8, **options)


# -- real workers -----------------------------------------------------------------------------


@asynccontextmanager
async def sampled(worker: FunctionWorker) -> AsyncIterator[list[tuple[int, int, str]]]:
    """Run ``worker`` and record (limit, jobs in flight, reason) every few milliseconds."""
    samples: list[tuple[int, int, str]] = []

    async def sample() -> None:
        while True:
            s = worker.stats()
            samples.append((s.concurrency, s.in_flight, s.scaling))
            await asyncio.sleep(0.005)

    async with worker:
        task = asyncio.create_task(sample())
        try:
            yield samples
        finally:
            task.cancel()


async def test_a_worker_grows_with_a_backlog_and_shrinks_back_when_it_is_gone(
        repo: RedisJobRepository) -> None:
    release = asyncio.Event()

    async def handler(job: Job, ctx: JobContext) -> None:
        await release.wait()

    await repo.enqueue_many([JobSpec("t", {"i": i}) for i in range(40)])
    config = WorkerConfig(worker_name="elastic", concurrency=8, min_concurrency=1,
                          scale_interval=0.05, latency_tolerance=1000, lease_timeout=0.6,
                          poll_interval=0.2)
    worker = FunctionWorker(config, job_repo=repo, handlers={"t": handler})
    async with sampled(worker) as samples:
        assert worker.stats().concurrency == 1  # starts at the minimum
        await until(lambda: worker.stats().in_flight == 8)  # 1 -> 2 -> 4 -> 8
        await asyncio.sleep(0.3)  # more scaling rounds with a backlog: never past the maximum
        assert max(in_flight for _, in_flight, _ in samples) == 8
        assert max(limit for limit, _, _ in samples) == 8
        assert {limit for limit, _, _ in samples} >= {1, 2, 4, 8}
        published = (await repo.stats()).workers[0]
        assert published["max_concurrency"] == 8 and published["min_concurrency"] == 1
        release.set()
        await until(lambda: worker.stats().jobs_processed == 40)
        await until(lambda: worker.stats().concurrency == 1)  # idle: one step per round
    reasons = [reason for *_, reason in samples]
    assert "backlog" in reasons and "idle" in reasons
    assert worker.stats().concurrency_changes >= 8
    assert (await repo.stats()).by_status["completed"] == 40


async def test_slow_jobs_stop_the_growth(repo: RedisJobRepository) -> None:
    """Jobs share a resource of capacity two: past two slots each job only waits longer."""
    resource = asyncio.Semaphore(2)

    async def handler(job: Job, ctx: JobContext) -> None:
        async with resource:
            await asyncio.sleep(0.02)

    await repo.enqueue_many([JobSpec("t", {"i": i}) for i in range(600)])
    config = WorkerConfig(worker_name="saturated", concurrency=16, min_concurrency=1,
                          scale_interval=0.1, latency_tolerance=2.0, poll_interval=0.2)
    worker = FunctionWorker(config, job_repo=repo, handlers={"t": handler})
    async with sampled(worker) as samples:
        await until(lambda: worker.stats().jobs_processed >= 300, timeout=60)
    reasons = [reason for *_, reason in samples]
    assert "latency" in reasons  # it tried more, saw each job slow down, and backed off
    assert max(limit for limit, _, _ in samples) < 16  # a fixed worker would run 16


async def test_high_memory_holds_the_worker_at_its_minimum(repo: RedisJobRepository) -> None:
    release = asyncio.Event()

    async def handler(job: Job, ctx: JobContext) -> None:
        await release.wait()

    await repo.enqueue_many([JobSpec("t", {"i": i}) for i in range(20)])
    config = WorkerConfig(worker_name="frugal", concurrency=8, min_concurrency=2,
                          scale_interval=0.05, memory_limit_mb=1)  # every process is above
    worker = FunctionWorker(config, job_repo=repo, handlers={"t": handler})
    async with sampled(worker) as samples:
        await until(lambda: worker.stats().scaling == "memory")
        await asyncio.sleep(0.3)  # several rounds with a backlog of 18
        release.set()
    assert max(in_flight for _, in_flight, _ in samples) == 2
    assert worker.stats().rss_mb > 1


async def test_without_min_concurrency_the_limit_is_fixed(repo: RedisJobRepository) -> None:
    async def handler(job: Job, ctx: JobContext) -> None:
        return None

    config = WorkerConfig(worker_name="fixed", concurrency=5)
    worker = FunctionWorker(config, job_repo=repo, handlers={"t": handler})
    async with worker:
        stats = worker.stats()
        assert (stats.concurrency, stats.scaling) == (5, "fixed")
        assert not any(t.get_name().endswith("autoscale") for t in asyncio.all_tasks())
