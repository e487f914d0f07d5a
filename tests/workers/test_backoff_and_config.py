"""Pure logic: backoff delays and configuration validation (no Redis)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docworkers.errors import ConfigurationError
from docworkers.queue import Job, RedisJobRepository
from docworkers.workers import (
    FunctionWorker,
    JobContext,
    WorkerConfig,
    backoff_delay,
    default_worker_config,
)
from docworkers.workers.config import DEFAULT_CONCURRENCY


def test_backoff_doubles_until_the_cap_without_jitter() -> None:
    delays = [backoff_delay(n, base=5, cap=60, jitter=None) for n in range(1, 7)]
    assert delays == [5, 10, 20, 40, 60, 60]


def test_backoff_full_jitter_stays_within_ceiling() -> None:
    rng = random.Random(7)
    samples = [backoff_delay(3, base=5, cap=300, jitter=rng.uniform) for _ in range(500)]
    assert all(0 <= s <= 20 for s in samples)
    assert max(samples) > 15 and min(samples) < 5  # spread over the whole range


@given(st.integers(min_value=1, max_value=10_000), st.floats(0, 100), st.floats(0, 1000))
def test_backoff_never_exceeds_cap_or_overflows(retry: int, base: float, cap: float) -> None:
    assert 0 <= backoff_delay(retry, base=base, cap=cap) <= cap


def test_backoff_rejects_retry_zero() -> None:
    with pytest.raises(ValueError, match="retry"):
        backoff_delay(0, base=1)


def test_worker_config_defaults_are_the_documented_ones() -> None:
    config = default_worker_config("worker-1")
    assert (config.concurrency, config.poll_interval, config.shutdown_timeout) == (0, 2.0, 30.0)
    assert (config.max_retries, config.retry_delay, config.enable_recovery) == (3, 5.0, True)


def test_concurrency_0_is_the_workers_own_default() -> None:
    async def handler(job: Job, ctx: JobContext) -> None:
        return None

    repo = RedisJobRepository.from_url("redis://127.0.0.1:6379")  # lazy: nothing is sent

    def built(**config: Any) -> WorkerConfig:
        worker = FunctionWorker(WorkerConfig(worker_name="w", **config), job_repo=repo,
                                handlers={"t": handler})
        return worker.config

    assert built().concurrency == FunctionWorker.default_concurrency == DEFAULT_CONCURRENCY == 50
    assert built(concurrency=7).concurrency == 7
    assert built(urgent_slots=2).urgent_slots == 2  # checked against the 50 it gets
    with pytest.raises(ConfigurationError, match="urgent_slots"):
        built(urgent_slots=DEFAULT_CONCURRENCY)  # no slot left for ordinary jobs
    with pytest.raises(ConfigurationError, match="min_concurrency"):
        built(min_concurrency=DEFAULT_CONCURRENCY + 1)
    with pytest.raises(ConfigurationError, match="concurrency"):
        WorkerConfig(worker_name="w", concurrency=-1)


def test_worker_config_accepts_timedelta() -> None:
    config = WorkerConfig(worker_name="w", poll_interval=timedelta(milliseconds=250))
    assert config.poll_interval == 0.25


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"worker_name": ""}, "worker_name"),
        ({"worker_name": "a b"}, "worker_name"),
        ({"worker_name": "w", "concurrency": -1}, "concurrency"),  # 0: the worker's default
        ({"worker_name": "w", "concurrency": True}, "concurrency"),
        ({"worker_name": "w", "poll_interval": -1}, "poll_interval"),
        ({"worker_name": "w", "shutdown_timeout": -0.5}, "shutdown_timeout"),
        ({"worker_name": "w", "max_retries": -1}, "max_retries"),
        ({"worker_name": "w", "retry_delay": -1}, "retry_delay"),
        ({"worker_name": "w", "lease_timeout": 0}, "lease_timeout"),
        ({"worker_name": "w", "log_level": "LOUD"}, "log_level"),
    ],
)
def test_worker_config_errors_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        WorkerConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)
