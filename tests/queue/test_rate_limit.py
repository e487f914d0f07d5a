"""Cluster-wide rate and concurrency limits, against a real Redis, from several connections
and processes. Timing checks are inequalities on Redis's clock that a correct limiter cannot
break, not wall-clock guesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from docworkers.errors import ConfigurationError, RateLimitedError
from docworkers.queue.rate_limit import (
    RedisConcurrencyLimiter,
    RedisRateLimiter,
    concurrency_key,
    rate_limit_key,
)

HERE = Path(__file__).parent


@pytest.fixture
async def client(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[Redis]:
    c = Redis.from_url(redis_url, decode_responses=True)
    yield c
    await c.aclose()


async def redis_now(client: Redis) -> float:
    seconds, micros = await client.time()
    return seconds + micros / 1e6


@pytest.fixture
def spawn(redis_url: str) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "limiter_proc.py"), args[0], redis_url, *args[1:]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


async def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
    return line.strip()


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


# -- rate -------------------------------------------------------------------------------------


async def test_burst_then_wait(client: Redis) -> None:
    limiter = RedisRateLimiter(client, "api", rate=10, burst=5)
    assert [await limiter.try_acquire() for _ in range(5)] == [0.0] * 5
    wait = await limiter.try_acquire()
    assert 0 < wait <= 0.1
    assert 0 < await limiter.try_acquire() <= wait  # a refused try takes nothing
    assert 0.1 < await limiter.try_acquire(2) <= 0.2  # two tokens: two intervals
    # The bucket refills completely within burst / rate seconds; its key expires by then.
    assert 0 < await client.pttl(rate_limit_key("api")) <= 501
    assert await client.keys("*") == [rate_limit_key("api")]


async def test_acquire_fails_fast_when_the_wait_exceeds_the_timeout(client: Redis) -> None:
    # One token per 10 s and a 5 s timeout: seconds of room for a busy machine either way.
    limiter = RedisRateLimiter(client, "slow", rate=0.1, burst=1)
    await limiter.acquire(timeout=0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RateLimitedError) as info:
        await limiter.acquire(timeout=5.0)
    assert loop.time() - started < 5.0  # it knew at once; it did not sleep the timeout away
    err = info.value
    assert err.retryable and err.code == "rate_limited" and err.limiter == "slow"
    assert 5.0 < err.retry_after <= 10.0 and "timeout=5.0" in str(err)
    assert 5.0 < await limiter.try_acquire() <= 10.0  # the refusal reserved nothing


async def test_acquire_waits_for_its_slot(client: Redis) -> None:
    limiter = RedisRateLimiter(client, "paced", rate=20, burst=1)
    t0 = await redis_now(client)
    for _ in range(4):
        await limiter.acquire(timeout=1.0)
    t1 = await redis_now(client)
    assert 1 + 20 * (t1 - t0) >= 4  # grants <= burst + rate * window


async def test_rate_is_global_across_connections_and_processes(
        redis_url: str, client: Redis, spawn: Any) -> None:
    rate, burst, each = 40.0, 5, 10
    procs = [spawn("rate", "embed", str(rate), str(burst), str(each)) for _ in range(2)]
    for proc in procs:
        assert await read_line(proc) == "ready"
    clients = [Redis.from_url(redis_url, decode_responses=True) for _ in range(4)]

    async def take(c: Redis) -> int:
        limiter = RedisRateLimiter(c, "embed", rate=rate, burst=burst)
        for _ in range(each):
            await limiter.acquire()
        return each

    try:
        t0 = await redis_now(client)
        for proc in procs:
            go(proc)
        counts = await asyncio.wait_for(asyncio.gather(*(take(c) for c in clients)), 15)
        for proc in procs:
            done = (await read_line(proc)).split()
            assert done[0] == "done"
            counts.append(int(done[1]))
        t1 = await redis_now(client)
    finally:
        for c in clients:
            await c.aclose()
    total = sum(counts)
    assert total == 6 * each
    # A per-process limiter would let 6 * burst through at once and finish in ~0.2 s.
    assert total <= burst + rate * (t1 - t0)
    assert t1 - t0 < (total - burst) / rate + 5.0  # and it is not needlessly slow


@pytest.mark.parametrize(("field", "kw"), [
    ("rate", {"rate": 0, "burst": 1}),
    ("rate", {"rate": float("inf"), "burst": 1}),
    ("burst", {"rate": 1, "burst": 0}),
    ("name", {"name": "has space", "rate": 1, "burst": 1}),
    ("name", {"name": "{tag}", "rate": 1, "burst": 1}),
])
def test_rate_limiter_validates_its_settings(field: str, kw: dict[str, Any]) -> None:
    kw.setdefault("name", "ok")
    with pytest.raises(ConfigurationError) as info:
        RedisRateLimiter(Redis(), kw.pop("name"), **kw)
    assert info.value.field == field


async def test_more_tokens_than_the_burst_is_an_error(client: Redis) -> None:
    limiter = RedisRateLimiter(client, "small", rate=5, burst=2)
    with pytest.raises(ConfigurationError, match="burst=2") as info:
        await limiter.acquire(3)
    assert info.value.field == "tokens"


# -- concurrency ------------------------------------------------------------------------------


async def test_at_most_limit_holders_across_connections_and_processes(
        redis_url: str, client: Redis, spawn: Any) -> None:
    limit, probe = 2, "probe:holders"
    slots = RedisConcurrencyLimiter(client, "llm", limit)
    assert await slots.try_acquire("a") == 0 and await slots.try_acquire("b") == 0
    assert await slots.try_acquire("c") > 0  # full
    assert await slots.holders() == 2
    await slots.release("a")
    await slots.release("b")

    proc = spawn("hold", "llm", str(limit), "4", probe)
    assert await read_line(proc) == "ready"
    clients = [Redis.from_url(redis_url, decode_responses=True) for _ in range(4)]

    async def work(c: Redis) -> int:
        mine = RedisConcurrencyLimiter(c, "llm", limit, lease=5.0)
        peak = 0
        for _ in range(4):
            async with mine.hold(timeout=20) as holding:
                assert not holding.lost
                peak = max(peak, int(await c.incr(probe)))
                await asyncio.sleep(0.03)
                await c.decr(probe)
        return peak

    try:
        go(proc)
        peaks = await asyncio.wait_for(asyncio.gather(*(work(c) for c in clients)), 20)
        done = (await read_line(proc)).split()
    finally:
        for c in clients:
            await c.aclose()
    assert done[:2] == ["done", "4"]
    assert max(*peaks, int(done[2])) <= limit
    assert await slots.holders() == 0
    assert not await client.exists(concurrency_key("llm"))  # released slots leave no key


async def test_a_dead_holders_slot_comes_back_after_its_lease(client: Redis) -> None:
    short = RedisConcurrencyLimiter(client, "gpu", 2, lease=0.3)
    slots = RedisConcurrencyLimiter(client, "gpu", 2, lease=5.0)
    assert await slots.try_acquire("alive") == 0  # keeps the key alive throughout
    assert await short.try_acquire("crashed-process") == 0  # never released
    with pytest.raises(RateLimitedError) as info:
        async with slots.hold(timeout=0.05):
            pass
    assert 0 < info.value.retry_after <= 0.3
    async with slots.hold(timeout=5) as holding:
        members = await client.zrange(concurrency_key("gpu"), 0, -1)
        assert sorted(members) == sorted(["alive", holding.holder_id])


async def test_hold_renews_its_lease_and_notices_losing_it(client: Redis) -> None:
    # Renewed every 0.5 s: a busy machine renews in time. Held past the first lease's end, on
    # Redis's clock (the lease's clock): only renewals keep the slot.
    slots = RedisConcurrencyLimiter(client, "long", 1, lease=1.5)
    async with slots.hold() as holding:
        first_expiry = await client.zscore(concurrency_key("long"), holding.holder_id)
        assert first_expiry is not None
        while await redis_now(client) * 1000 <= first_expiry:
            await asyncio.sleep(0.02)
        expiry = await client.zscore(concurrency_key("long"), holding.holder_id)
        assert expiry is not None and expiry > first_expiry  # renewed: the expiry moved on
        assert await slots.try_acquire("other") > 0
        assert not holding.lost
        await client.zrem(concurrency_key("long"), holding.holder_id)  # taken from us
        for _ in range(100):
            if holding.lost:
                break
            await asyncio.sleep(0.02)
        assert holding.lost
    assert await slots.try_acquire("other") == 0


def test_concurrency_limiter_validates_its_settings() -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisConcurrencyLimiter(Redis(), "x", 0)
    assert info.value.field == "limit"
    with pytest.raises(ConfigurationError) as info:
        RedisConcurrencyLimiter(Redis(), "x", 1, lease=0.01)
    assert info.value.field == "lease"
