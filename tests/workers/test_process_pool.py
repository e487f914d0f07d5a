"""Process autoscaling: the pool adds worker processes for a backlog and retires them after.

The scaler is pure (a test clock); the pool test spawns real worker processes that drain a real
queue, and checks that no job is lost or run twice while processes come and go.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from job_waits import until
from manual_clock import ManualClock
from sleep_worker_proc import main as sleep_worker

from docworkers.api.metrics import ApiMetrics
from docworkers.errors import ConfigurationError
from docworkers.queue import JobSpec, RedisJobRepository
from docworkers.workers.process_pool import ProcessPool, ProcessScaler, ProcessScalingConfig


def test_the_scaler_grows_at_once_and_shrinks_one_at_a_time_after_the_delay() -> None:
    clock = ManualClock(now=0.0)
    scaler = ProcessScaler(ProcessScalingConfig(min_processes=1, max_processes=4,
                                                jobs_per_process=10, scale_down_delay=30),
                           clock)
    assert scaler.decide(1, 0) == (1, "steady")
    assert scaler.decide(1, 25) == (3, "backlog")  # ceil(25 / 10), at once
    assert scaler.decide(3, 500) == (4, "backlog")  # capped at max_processes
    assert scaler.decide(4, 0) == (4, "cooling down")
    clock.now = 29.0
    assert scaler.decide(4, 0) == (4, "cooling down")
    clock.now = 30.0
    assert scaler.decide(4, 0) == (3, "idle")
    clock.now = 45.0
    assert scaler.decide(3, 0) == (3, "cooling down")  # a full delay again for the next one
    assert scaler.decide(3, 35) == (4, "backlog")  # a new backlog resets the cool-down
    clock.now = 60.0
    assert scaler.decide(4, 0) == (4, "cooling down")
    clock.now = 90.0
    assert scaler.decide(4, 11) == (3, "idle")  # 11 waiting need 2: one step at a time
    assert scaler.decide(1, 0) == (1, "steady")  # never below min_processes


@pytest.mark.parametrize(("options", "field"), [
    ({"min_processes": 0}, "min_processes"),
    ({"min_processes": 3, "max_processes": 2}, "max_processes"),
    ({"jobs_per_process": 0}, "jobs_per_process"),
    ({"scale_down_delay": -1}, "scale_down_delay"),
    ({"interval": 0}, "interval"),
])
def test_invalid_scaling_settings_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        ProcessScalingConfig(**options)


async def test_processes_follow_the_backlog_and_no_job_is_lost(
        redis_url: str, repo: RedisJobRepository, invariants: Any) -> None:
    ids = await repo.enqueue_many([JobSpec("sleep", {"i": i}) for i in range(300)])
    config = ProcessScalingConfig(min_processes=1, max_processes=3, jobs_per_process=20,
                                  scale_down_delay=0.5, interval=0.1)
    pool = ProcessPool(functools.partial(sleep_worker, redis_url, repo.queue, 0.02), config,
                       name="test-pool")
    seen: list[dict[str, Any]] = []

    async def publish(status: dict[str, Any] | None) -> None:
        if status is not None:
            seen.append(status)
        await repo.publish_supervisor("test-pool", status or {}, 0 if status is None else 5)

    runner = asyncio.create_task(pool.run(repo.queue_depth, publish))
    try:
        await until(lambda: pool.status.processes == 3, timeout=60)  # 300 waiting: the maximum
        stats = await repo.stats()
        assert stats.supervisors and stats.supervisors[0]["max_processes"] == 3
        metrics = ApiMetrics().render(stats).decode()
        assert 'docworkers_worker_processes{kind="max",supervisor="test-pool"} 3.0' in metrics
        assert 'docworkers_worker_processes{kind="running",supervisor="test-pool"}' in metrics
        await until(lambda: pool.status.retired == 2 and pool.status.processes == 1,
                    timeout=60)
        assert pool.status.reason in ("idle", "steady", "cooling down")
    finally:
        pool.stop()
        code = await asyncio.wait_for(runner, 60)
    assert code == 0
    assert max(s["processes"] for s in seen) == 3
    assert {s["reason"] for s in seen} >= {"backlog", "idle"}
    assert (await repo.stats()).supervisors == []  # withdrawn on exit
    jobs = await repo.get_jobs(ids)
    assert all(job.status == "completed" for job in jobs)
    assert len({job.result for job in jobs}) >= 2  # more than one process did the work
    statuses = invariants()
    assert len(statuses) == 300
