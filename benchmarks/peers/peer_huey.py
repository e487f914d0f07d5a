"""huey: RedisHuey (BRPOP on a list), one consumer process with its default one worker thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import redis
from _common import URL, Enqueue, job_sync, main
from huey import RedisHuey

huey = RedisHuey("peers", url=URL)
client = redis.Redis.from_url(URL)


@huey.task()
def noop(sent: float) -> None:
    job_sync(client, sent)


@asynccontextmanager
async def producer() -> AsyncIterator[Enqueue]:
    async def enqueue(sent: float) -> None:
        noop(sent)

    yield enqueue


def worker() -> None:
    huey.create_consumer(workers=1, worker_type="thread").run()


if __name__ == "__main__":
    main(producer, worker, version("huey"))
