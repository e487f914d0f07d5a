"""CircuitBreaker: a simulated clock drives every state change, so nothing sleeps."""

from __future__ import annotations

import asyncio
import pickle
import threading
from typing import Any

import pytest
from manual_clock import ManualClock

from docworkers.errors import (
    CircuitOpenError,
    ConfigurationError,
    InvalidPayloadError,
    RetryableJobError,
    ServiceUnavailableError,
    error_code,
)
from docworkers.queue import JobStatus, RedisJobRepository
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig
from docworkers.workers.circuit_breaker import (
    CircuitBreaker,
    CircuitState,
    breakers,
    get_breaker,
)

pytestmark = pytest.mark.usefixtures("isolated_breakers")


class Down(Exception):
    """The protected service failed."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def state(breaker: CircuitBreaker) -> CircuitState:
    """Read through a function so that mypy does not narrow the property between reads."""
    return breaker.state


def make(clock: ManualClock, name: str = "svc", **kw: Any) -> CircuitBreaker:
    kw.setdefault("failure_threshold", 3)
    kw.setdefault("reset_timeout", 10.0)
    return CircuitBreaker(name, clock=clock, **kw)


async def fail() -> None:
    raise Down("connection refused")


async def ok(value: int = 1) -> int:
    return value


async def test_opens_after_consecutive_failures_and_fails_fast(clock: ManualClock) -> None:
    breaker = make(clock)
    for _ in range(2):
        with pytest.raises(Down):
            await breaker.call(fail)
    assert await breaker.call(ok, 7) == 7  # a success resets the consecutive count
    for _ in range(2):
        with pytest.raises(Down):
            await breaker.call(fail)
    assert state(breaker) is CircuitState.CLOSED
    with pytest.raises(Down):
        await breaker.call(fail)
    assert state(breaker) is CircuitState.OPEN

    called = False

    async def spy() -> None:
        nonlocal called
        called = True

    clock.now += 4
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(spy)
    assert not called  # refused without trying
    err = info.value
    assert isinstance(err, ServiceUnavailableError) and isinstance(err, RetryableJobError)
    assert err.retryable and error_code(err) == "service_unavailable"
    assert err.retry_after == pytest.approx(6.0) and err.breaker == "svc"
    assert "svc" in str(err) and "6.0s" in str(err)
    stats = breaker.stats()
    assert stats.state is CircuitState.OPEN and stats.opened_count == 1
    assert stats.rejected_calls == 1 and stats.retry_after == pytest.approx(6.0)
    assert stats.last_failure == "Down: connection refused"
    assert stats.to_dict()["state"] == "open"


async def test_half_open_probe_success_closes(clock: ManualClock) -> None:
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(Down):
        await breaker.call(fail)
    clock.now += 9.999
    assert state(breaker) is CircuitState.OPEN
    clock.now += 0.001
    assert state(breaker) is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == 1
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.stats().failures == 0


async def test_half_open_probe_failure_reopens_for_a_fresh_timeout(clock: ManualClock) -> None:
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(Down):
        await breaker.call(fail)
    clock.now += 10
    with pytest.raises(Down):
        await breaker.call(fail)  # the probe
    assert state(breaker) is CircuitState.OPEN
    assert breaker.stats().opened_count == 2
    clock.now += 9
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(ok)
    assert info.value.retry_after == pytest.approx(1.0)


async def test_half_open_admits_only_max_probes_at_once(clock: ManualClock) -> None:
    breaker = make(clock, failure_threshold=1, half_open_max_calls=2)
    with pytest.raises(Down):
        await breaker.call(fail)
    clock.now += 10
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "ok"

    probes = [asyncio.create_task(breaker.call(slow)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(ok)
    assert info.value.retry_after == 10.0  # the probes decide; at worst it stays shut that long
    release.set()
    assert await asyncio.gather(*probes) == ["ok", "ok"]
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.stats().rejected_calls == 1


async def test_async_with_tracks_each_task_and_ignores_stale_results(clock: ManualClock) -> None:
    """Two probes in flight in two tasks: the first fails and re-opens the breaker; the
    second succeeds later, but it was admitted before that change, so it must not close it."""
    breaker = make(clock, failure_threshold=1, half_open_max_calls=2)
    with pytest.raises(Down):
        async with breaker:
            raise Down("x")
    clock.now += 10
    first_in, second_in, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def failing_probe() -> None:
        async with breaker:
            first_in.set()
            await second_in.wait()
            raise Down("still down")

    async def late_success() -> None:
        await first_in.wait()
        async with breaker:
            second_in.set()
            await first_out.wait()

    t1 = asyncio.create_task(failing_probe())
    t2 = asyncio.create_task(late_success())
    with pytest.raises(Down):
        await t1
    assert state(breaker) is CircuitState.OPEN
    clock.now += 10
    assert state(breaker) is CircuitState.HALF_OPEN  # a fresh probe is due ...
    first_out.set()
    await t2
    assert state(breaker) is CircuitState.HALF_OPEN  # ... the stale success does not count
    assert breaker.stats().opened_count == 2


async def test_a_stale_failure_does_not_reopen_a_recovered_breaker(clock: ManualClock) -> None:
    """A call admitted long ago fails only after the service recovered: old news."""
    breaker = make(clock, failure_threshold=1)
    release = asyncio.Event()

    async def slow_failure() -> None:
        await release.wait()
        raise Down("timed out long ago")

    straggler = asyncio.create_task(breaker.call(slow_failure))
    await asyncio.sleep(0)
    with pytest.raises(Down):
        await breaker.call(fail)  # opens
    clock.now += 10
    assert await breaker.call(ok) == 1  # the probe closes it
    release.set()
    with pytest.raises(Down):
        await straggler
    assert state(breaker) is CircuitState.CLOSED and breaker.stats().failures == 0
    assert breaker.stats().last_failure == "Down: timed out long ago"


async def test_bad_input_is_not_a_service_failure(clock: ManualClock) -> None:
    breaker = make(clock, failure_threshold=1)

    async def bad_input() -> None:
        raise InvalidPayloadError("payload.url: missing")

    for _ in range(3):
        with pytest.raises(InvalidPayloadError):
            await breaker.call(bad_input)
    assert state(breaker) is CircuitState.CLOSED and breaker.stats().last_failure is None

    picky = make(clock, "picky", failure_threshold=1,
                 is_failure=lambda exc: isinstance(exc, TimeoutError))
    with pytest.raises(Down):
        await picky.call(fail)
    assert state(picky) is CircuitState.CLOSED
    with pytest.raises(TimeoutError):
        picky.call_sync(_raise, TimeoutError("slow"))
    assert state(picky) is CircuitState.OPEN


async def test_cancelled_probe_frees_its_slot(clock: ManualClock) -> None:
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(Down):
        await breaker.call(fail)
    clock.now += 10
    probe = asyncio.create_task(breaker.call(asyncio.sleep, 60))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert state(breaker) is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == 1  # the slot was given back: this probe is admitted
    assert state(breaker) is CircuitState.CLOSED


def _raise(exc: BaseException) -> None:
    raise exc


def test_call_sync_from_many_threads_loses_no_update(clock: ManualClock) -> None:
    breaker = make(clock, failure_threshold=10_000)
    barrier = threading.Barrier(8)

    def hammer() -> None:
        barrier.wait()
        for _ in range(250):
            with pytest.raises(Down):
                breaker.call_sync(_raise, Down("x"))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.stats().failures == 2000
    assert breaker.call_sync(lambda: 5) == 5
    assert breaker.stats().failures == 0


def test_threads_open_it_exactly_once(clock: ManualClock) -> None:
    breaker = make(clock, failure_threshold=100)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def hammer() -> None:
        barrier.wait()
        for _ in range(50):
            try:
                breaker.call_sync(_raise, Down("x"))
            except CircuitOpenError:
                with lock:
                    outcomes.append("rejected")
            except Down:
                with lock:
                    outcomes.append("tried")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = breaker.stats()
    assert stats.opened_count == 1 and stats.state is CircuitState.OPEN
    assert outcomes.count("rejected") == stats.rejected_calls == 400 - outcomes.count("tried")
    assert outcomes.count("tried") >= 100


def test_registry_lists_and_shares_breakers(clock: ManualClock) -> None:
    a = make(clock, "chroma")
    assert breakers()["chroma"] is a
    with pytest.raises(ConfigurationError) as info:
        make(clock, "chroma")
    assert info.value.field == "name" and "get_breaker" in str(info.value)
    assert get_breaker("chroma") is a
    assert get_breaker("chroma", failure_threshold=3) is a
    with pytest.raises(ConfigurationError) as conflict:
        get_breaker("chroma", failure_threshold=4)
    assert conflict.value.field == "failure_threshold"
    b = get_breaker("onnx", reset_timeout=5.0)
    assert b.reset_timeout == 5.0 and get_breaker("onnx") is b
    assert {"chroma", "onnx"} <= set(breakers())
    a.unregister()
    assert "chroma" not in breakers()
    make(clock, "chroma")  # the name is free again


@pytest.mark.parametrize(("field", "kw"), [
    ("failure_threshold", {"failure_threshold": 0}),
    ("half_open_max_calls", {"half_open_max_calls": 0}),
    ("reset_timeout", {"reset_timeout": 0}),
    ("reset_timeout", {"reset_timeout": "5"}),
])
def test_invalid_settings_name_the_field(clock: ManualClock, field: str,
                                         kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        CircuitBreaker("bad", clock=clock, **kw)
    assert info.value.field == field
    assert "bad" not in breakers()


def test_reset_and_pickled_error(clock: ManualClock) -> None:
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(Down):
        breaker.call_sync(_raise, Down("x"))
    breaker.reset()
    assert state(breaker) is CircuitState.CLOSED
    err = pickle.loads(pickle.dumps(CircuitOpenError("svc", 2.5)))
    assert isinstance(err, CircuitOpenError) and err.retry_after == 2.5 and err.breaker == "svc"


async def test_worker_retries_a_job_refused_by_an_open_breaker(
        repo: RedisJobRepository, clock: ManualClock) -> None:
    """The worker treats CircuitOpenError as retryable: the job waits for a retry, it is not
    failed or dead-lettered, and the refusal does not use up an attempt."""
    breaker = make(clock, "test-refusing-service", failure_threshold=1)
    with pytest.raises(Down):
        await breaker.call(fail)

    async def handler(job: Any, ctx: JobContext) -> str:
        return await breaker.call(ok_text)

    job_id = await repo.enqueue("store", {}, max_retries=5)
    config = WorkerConfig(worker_name="cb", poll_interval=0.05, retry_delay=30.0)
    async with FunctionWorker(config, job_repo=repo, handlers={"store": handler}):
        for _ in range(500):
            job = await repo.get_job(job_id)
            if job.status is JobStatus.RETRYING:
                break
            await asyncio.sleep(0.01)
    assert job.status is JobStatus.RETRYING and job.retry_count == 0
    assert job.error is not None and job.error.code == "service_unavailable"


async def ok_text() -> str:
    return "stored"
