"""A worker process for kill tests: ``python worker_proc.py URL QUEUE NAME SLEEP LEASE [log]``.

It runs on uvloop (``docworkers.workers.run``), as ``docworkers worker`` does. Its handler writes
``started <job id>`` to stdout, then sleeps SLEEP seconds and returns. With ``log``, the worker's
warnings go to stdout too (a test waits for one).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from docworkers.queue import Job, RedisJobRepository, RepositoryConfig
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig, run


async def main(url: str, queue: str, name: str, sleep: float, lease: float) -> None:
    async def handler(job: Job, ctx: JobContext) -> dict[str, str]:
        print(f"started {job.id}", flush=True)
        await asyncio.sleep(sleep)
        return {"by": name}

    repo = RedisJobRepository.from_url(url, RepositoryConfig(queue=queue))
    config = WorkerConfig(worker_name=name, lease_timeout=lease, poll_interval=0.2)
    worker = FunctionWorker(config, job_repo=repo, handlers={"sleep": handler})
    await worker.start()
    await worker.wait()


if __name__ == "__main__":
    url, queue, name, sleep, lease = sys.argv[1:6]
    if sys.argv[6:] == ["log"]:
        handler = logging.StreamHandler(sys.stdout)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("log %(message)s"))
        logging.getLogger().addHandler(handler)
    run(main(url, queue, name, float(sleep), float(lease)))  # uvloop, as `docworkers worker`
