"""A Redis server that goes away mid-job and comes back: the worker reconnects, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server_start import start_valkey

from docworkers.embedded import EmbeddedRedis
from docworkers.queue import Job, JobStatus, RedisJobRepository, RepositoryConfig
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


async def test_worker_survives_a_redis_restart_mid_job(tmp_path: Path) -> None:
    server = EmbeddedRedis(base_dir=tmp_path, appendonly=True)
    url = start_valkey(server)
    repo = RedisJobRepository.from_url(url, RepositoryConfig(queue="outage"))
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(job: Job, ctx: JobContext) -> str:
        started.set()
        await release.wait()
        return f"done {job.payload['n']}"

    worker = FunctionWorker(WorkerConfig(worker_name="w", poll_interval=0.2, lease_timeout=60),
                            job_repo=repo, handlers={"t": handler})
    try:
        first = await repo.enqueue("t", {"n": 1})
        await worker.start()
        await asyncio.wait_for(started.wait(), 10)
        server.stop(keep_data=True)  # Redis goes away while the job runs
        release.set()  # the job finishes while Redis is down: its completion must wait
        await asyncio.sleep(1.0)
        assert worker.is_running()
        start_valkey(server)  # same port, same data
        second = await repo.enqueue("t", {"n": 2})

        async def finished(job_id: str) -> Job:
            while (job := await repo.get_job(job_id)).status != JobStatus.COMPLETED:
                await asyncio.sleep(0.05)
            return job

        one = await asyncio.wait_for(finished(first), 30)
        two = await asyncio.wait_for(finished(second), 30)
        assert (one.result, two.result) == ("done 1", "done 2")
        assert one.retry_count == 0  # completed by the original attempt, not re-run
    finally:
        await worker.stop()
        await repo.close()
        server.stop()
