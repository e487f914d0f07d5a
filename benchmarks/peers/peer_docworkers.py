"""docworkers: run by the project's own virtualenv; one FunctionWorker at its default settings
(concurrency 50), enqueued with ``RedisJobRepository.enqueue``. The worker runs on
``docworkers.workers.run``, as ``docworkers worker`` does (uvloop: it is in the project's
virtualenv); the producer on the harness's asyncio loop, as every peer's."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import redis.asyncio
from _common import URL, Enqueue, job_async, main

from docworkers.queue import Job, RedisJobRepository, RepositoryConfig
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig, run

client = redis.asyncio.Redis.from_url(URL)


CONFIG = RepositoryConfig(queue="peers", namespace="peers")


def repository() -> RedisJobRepository:
    return RedisJobRepository.from_url(URL, CONFIG)


async def noop(job: Job, ctx: JobContext) -> None:
    await job_async(client, float(job.payload["sent"]))


@asynccontextmanager
async def producer() -> AsyncIterator[Enqueue]:
    async with repository() as repo:

        async def enqueue(sent: float) -> None:
            await repo.enqueue("noop", {"sent": sent})

        yield enqueue


async def _work(concurrency: int | None) -> None:
    config = WorkerConfig(worker_name="peers")
    if concurrency is not None:
        config = WorkerConfig(worker_name="peers", concurrency=concurrency)
    async with repository() as repo:
        running = FunctionWorker(config, job_repo=repo, handlers={"noop": noop})
        await running.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await running.stop()


def worker(concurrency: int | None = None) -> None:
    """One worker process at the default concurrency, or at ``concurrency``."""
    run(_work(concurrency))


if __name__ == "__main__":
    main(producer, worker, version("docworkers"))
