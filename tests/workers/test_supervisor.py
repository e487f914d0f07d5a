"""workers/supervisor.run_pool: the workers of one process until a signal or a crash."""

from __future__ import annotations

import asyncio
import os
import signal

from job_waits import until

from docworkers.errors import RepositoryConnectionError
from docworkers.queue import Job, JobStatus, RedisJobRepository
from docworkers.workers import BaseWorker, FunctionWorker, JobContext, WorkerConfig
from docworkers.workers.supervisor import run_pool


class Companion:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


async def test_sigterm_stops_the_pool_cleanly(repo: RedisJobRepository, invariants) -> None:
    built: list[BaseWorker] = []
    done: list[str] = []

    async def handler(job: Job, ctx: JobContext) -> str:
        done.append(job.id)
        return "ok"

    def build() -> list[BaseWorker]:
        built.append(FunctionWorker(WorkerConfig(worker_name=f"sup-{len(built)}"),
                                    job_repo=repo, handlers={"t": handler}))
        return built[-1:]

    companion = Companion()
    running = asyncio.create_task(run_pool(
        build, retry_on=(RepositoryConnectionError,), startup_timeout=None,
        shutdown_timeout=5.0, signals=(signal.SIGTERM,), companions=[companion]))
    await until(lambda: companion.events == ["start"])
    job_id = await repo.enqueue("t", {})
    await until(lambda: done == [job_id])
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(running, 20) == 0
    assert companion.events == ["start", "stop"]
    assert len(built) == 1 and not built[0].is_running()
    assert (await repo.get_job(job_id)).status == JobStatus.COMPLETED
    assert (await repo.stats()).active_workers == 0
    invariants()


async def test_a_worker_that_stops_on_an_error_stops_the_pool_with_code_1(
        repo: RedisJobRepository) -> None:
    async def handler(job: Job, ctx: JobContext) -> str:
        raise RuntimeError("a bug")

    config = WorkerConfig(worker_name="crashing", enable_recovery=False)
    # The bystander works on a queue of its own: on the same one it could take the job first.
    workers = [FunctionWorker(config, job_repo=repo, handlers={"t": handler}),
               FunctionWorker(WorkerConfig(worker_name="bystander"),
                              job_repo=repo.for_queue("bystander"),
                              handlers={"other": handler})]
    running = asyncio.create_task(run_pool(
        lambda: workers, retry_on=(RepositoryConnectionError,), startup_timeout=0,
        shutdown_timeout=5.0, signals=(signal.SIGTERM,)))
    await until(lambda: all(w.is_running() for w in workers))
    await repo.enqueue("t", {})
    assert await asyncio.wait_for(running, 20) == 1
    assert not any(w.is_running() for w in workers)  # the others were stopped too
