"""taskiq: RedisStreamBroker (taskiq-redis), one worker process, no result backend."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import redis.asyncio
from _common import URL, Enqueue, job_async, main
from taskiq.api import run_receiver_task
from taskiq_redis import RedisStreamBroker

broker = RedisStreamBroker(URL)
client = redis.asyncio.Redis.from_url(URL)


@broker.task
async def noop(sent: float) -> None:
    await job_async(client, sent)


@asynccontextmanager
async def producer() -> AsyncIterator[Enqueue]:
    await broker.startup()

    async def enqueue(sent: float) -> None:
        await noop.kiq(sent)

    yield enqueue
    await broker.shutdown()


async def _work() -> None:
    """What ``taskiq worker peer_taskiq:broker --workers 1`` runs in its one child process."""
    broker.is_worker_process = True
    await broker.startup()
    task = asyncio.create_task(run_receiver_task(broker))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    task.cancel()
    await broker.shutdown()


def worker() -> None:
    asyncio.run(_work())


if __name__ == "__main__":
    main(producer, worker, f"{version('taskiq')} (streams, taskiq-redis {version('taskiq-redis')})")
