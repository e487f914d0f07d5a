"""arq: one worker process with its default max_jobs=10 on one event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import redis.asyncio
from _common import URL, Enqueue, job_async, main
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

settings = RedisSettings.from_dsn(URL)
client = redis.asyncio.Redis.from_url(URL)


async def noop(ctx: dict[str, Any], sent: float) -> None:
    await job_async(client, sent)


@asynccontextmanager
async def producer() -> AsyncIterator[Enqueue]:
    pool = await create_pool(settings)

    async def enqueue(sent: float) -> None:
        await pool.enqueue_job("noop", sent)

    yield enqueue
    await pool.aclose()


def worker() -> None:
    Worker(functions=[noop], redis_settings=settings).run()


if __name__ == "__main__":
    main(producer, worker, version("arq"))
