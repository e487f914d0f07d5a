"""One worker process of the chaos run: an UploadWorker plus a no-op worker on its own queue.

Configured from DOCWORKERS_* variables (Redis and Chroma server URLs, lease); started and
killed by benchmarks/chaos.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from docworkers.queue import Job, RedisJobRepository, RepositoryConfig
from docworkers.runtime import Runtime
from docworkers.settings import Settings
from docworkers.workers import FunctionWorker, JobContext, WorkerPool


async def noop(job: Job, ctx: JobContext) -> dict[str, str]:
    await asyncio.sleep(float(job.payload.get("sleep", 0.0)))
    return {"n": job.payload.get("n", 0)}


async def main(name: str) -> None:
    settings = Settings.from_env(env_file=None)
    async with Runtime(settings) as runtime:
        noop_repo = RedisJobRepository.from_url(
            runtime.redis_url, RepositoryConfig(queue="chaos-noop")
        )
        pool = WorkerPool()
        pool.add_worker(runtime.upload_worker(f"{name}-upload", concurrency=2))
        pool.add_worker(
            FunctionWorker(
                runtime.worker_config(f"{name}-noop", concurrency=20),
                job_repo=noop_repo,
                handlers={"noop": noop},
            )
        )
        await pool.start_all()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print("ready", os.getpid(), flush=True)
        await stop.wait()
        await pool.stop_all()
        await noop_repo.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
