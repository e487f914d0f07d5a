"""A worker process for the process-pool tests: sleeps ``seconds`` per job until SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from docworkers.queue import Job, RedisJobRepository, RepositoryConfig
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


def main(redis_url: str, queue: str, seconds: float, index: int) -> None:
    asyncio.run(_run(redis_url, queue, seconds, index))


async def _run(redis_url: str, queue: str, seconds: float, index: int) -> None:
    async def handler(job: Job, ctx: JobContext) -> int:
        await asyncio.sleep(seconds)
        return index

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue=queue))
    config = WorkerConfig(worker_name=f"sleeper{index}", concurrency=2, lease_timeout=5,
                          shutdown_timeout=10)
    try:
        async with FunctionWorker(config, job_repo=repo, handlers={"sleep": handler}):
            await stop.wait()
    finally:
        await repo.close()
