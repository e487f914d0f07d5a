"""saq: one worker process with its default concurrency of 10 on one event loop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import redis.asyncio
from _common import URL, Enqueue, job_async, main
from saq import Queue, Worker

client = redis.asyncio.Redis.from_url(URL)


async def noop(ctx: dict[str, Any], *, sent: float) -> None:
    await job_async(client, sent)


@asynccontextmanager
async def producer() -> AsyncIterator[Enqueue]:
    queue = Queue.from_url(URL)
    await queue.connect()

    async def enqueue(sent: float) -> None:
        await queue.enqueue("noop", sent=sent)

    yield enqueue
    await queue.disconnect()


async def _work() -> None:
    running = Worker(Queue.from_url(URL), functions=[noop])
    task = asyncio.create_task(running.start())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await running.stop()
    task.cancel()


def worker() -> None:
    asyncio.run(_work())


if __name__ == "__main__":
    main(producer, worker, version("saq"))
