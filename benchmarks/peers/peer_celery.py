"""celery: the Redis transport, results ignored, one worker process (the solo pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import redis
from _common import URL, Enqueue, job_sync, main
from celery import Celery

app = Celery("peers", broker=URL)
app.conf.task_ignore_result = True
client = redis.Redis.from_url(URL)


@app.task
def noop(sent: float) -> None:
    job_sync(client, sent)


@asynccontextmanager
async def producer() -> AsyncIterator[Enqueue]:
    async def enqueue(sent: float) -> None:
        noop.delay(sent)

    yield enqueue


def worker() -> None:
    app.Worker(pool="solo", concurrency=1, loglevel="WARNING", quiet=True).start()


if __name__ == "__main__":
    main(producer, worker, version("celery"))
