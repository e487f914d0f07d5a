"""What every adapter shares: the no-op job's Redis writes and the adapter command line.

An adapter (``peer_NAME.py``) runs in a subprocess of ``run.py``: under the peers' own
virtualenv, or the project's for docworkers. It reads the Redis URL from ``PEERS_REDIS_URL`` (the
peers' apps are module-level objects built at import, as their documentation shows) and
gives :func:`main` two things: ``producer``, an async context manager yielding ``enqueue(sent)``,
and ``worker``, which runs one worker process until SIGTERM. Only redis-py and the standard
library are imported here, so this file works in both virtualenvs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import redis
import redis.asyncio

URL = os.environ.get("PEERS_REDIS_URL", "redis://127.0.0.1:6379/14")
COUNTER = "peers:count"  # the job's one INCR
PICKUP = "peers:pickup"  # pickup latencies in ms, written only when the job carries ``sent``

Enqueue = Callable[[float], Awaitable[Any]]
Producer = Callable[[], AbstractAsyncContextManager[Enqueue]]


def job_sync(client: redis.Redis, sent: float) -> None:
    """The no-op job: one INCR (plus, in the pickup phase, its start minus the enqueue time)."""
    started = time.time()
    client.incr(COUNTER)
    if sent:
        client.rpush(PICKUP, (started - sent) * 1000)


async def job_async(client: redis.asyncio.Redis, sent: float) -> None:
    started = time.time()
    await client.incr(COUNTER)
    if sent:
        await client.rpush(PICKUP, (started - sent) * 1000)


async def _enqueue(producer: Producer, jobs: int) -> float:
    async with producer() as enqueue:
        started = time.perf_counter()
        for _ in range(jobs):
            await enqueue(0.0)
        return time.perf_counter() - started


async def _pickup(producer: Producer, jobs: int, spacing: float) -> None:
    """With the worker idle, enqueue ``jobs`` one at a time, ``spacing`` seconds apart.

    A first job (not measured) shows the worker is up; the harness reads the latencies.
    """
    client = redis.asyncio.Redis.from_url(URL)
    async with producer() as enqueue:
        await enqueue(0.0)
        await _wait_count(client, 1, 60)
        await asyncio.sleep(0.5)
        for _ in range(jobs):
            await enqueue(time.time())
            await asyncio.sleep(spacing)
        await _wait_count(client, jobs + 1, 60)
    await client.aclose()


async def _wait_count(client: redis.asyncio.Redis, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while int(await client.get(COUNTER) or 0) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {int(await client.get(COUNTER) or 0)} of {count} jobs ran")
        await asyncio.sleep(0.002)


def main(producer: Producer, worker: Callable[[], None], version: str) -> None:
    """``enqueue N`` (prints the seconds), ``pickup N SPACING``, ``worker``, ``version``."""
    command, *args = sys.argv[1:]
    if command == "enqueue":
        print(asyncio.run(_enqueue(producer, int(args[0]))))
    elif command == "pickup":
        asyncio.run(_pickup(producer, int(args[0]), float(args[1])))
    elif command == "worker":
        worker()
    elif command == "version":
        print(version)
    else:
        raise SystemExit(f"unknown command {command!r}")
