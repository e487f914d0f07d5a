"""Getting a command's own jobs done on a shared queue, without touching anyone else's.

``ingest``, ``jobs submit --wait`` and ``import`` wait for the jobs they queued. When a worker
serves the jobs' queue (its heartbeat is live and it is not itself restricted to some client's
jobs) they leave the jobs to it and only watch. When none does, they run a local worker on a
view of the queue that reserves only their own jobs
(:meth:`~docworkers.queue.RedisJobRepository.restricted_to`): other clients' jobs on the queue
are never taken, failed or handed back by the command. Should the live worker go away while own
jobs are unfinished, the local worker starts then (jobs it left running come back when their
lease runs out).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from docworkers.cli.render import esc
from docworkers.errors import DocworkersError

if TYPE_CHECKING:
    from rich.console import Console

    from docworkers.queue import RedisJobRepository
    from docworkers.queue.repository import RestrictedJobRepository
    from docworkers.runtime import Runtime
    from docworkers.workers import BaseWorker

WORKER_CHECK_INTERVAL = 1.0  # seconds between two looks for a live worker (a stats read)

WorkerFactory = Callable[["RestrictedJobRepository"], "BaseWorker"]


@dataclass(slots=True)
class _Lane:
    """One queue's own jobs and who runs them: a live worker (``live``) or ``local``."""

    label: str
    view: RestrictedJobRepository
    make_worker: WorkerFactory
    live: str | None = None  # the name of the live worker relied on
    local: BaseWorker | None = None
    stopped: asyncio.Task[None] | None = None  # ends when the local worker stops


class OwnJobs:
    """The lanes of one command (a queue each); use ``async with`` and call :meth:`tend`
    between two looks at the jobs."""

    def __init__(self, console: Console, *, check_interval: float = WORKER_CHECK_INTERVAL
                 ) -> None:
        self.console = console
        self.check_interval = check_interval
        self._lanes: list[_Lane] = []
        self._checked = float("-inf")

    def add(self, repo: RedisJobRepository, job_ids: Iterable[str],
            make_worker: WorkerFactory, *, label: str = "") -> RestrictedJobRepository:
        """Get ``job_ids`` of ``repo``'s queue done; ``make_worker`` builds the local worker on
        the restricted view returned (``allow`` more ids on it as they are queued)."""
        view = repo.restricted_to(job_ids)
        self._lanes.append(_Lane(label, view, make_worker))
        return view

    @property
    def processing_here(self) -> bool:
        return any(lane.local is not None for lane in self._lanes)

    def seen(self) -> list[int]:
        """The outcomes each lane's local worker has stored so far, for :meth:`wait`."""
        return [lane.local.stored_outcomes if lane.local is not None else 0
                for lane in self._lanes]

    async def wait(self, seen: list[int], timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, less if a local worker stores an outcome it had not
        stored when :meth:`seen` gave ``seen``: the caller then looks at its jobs at once
        instead of up to ``timeout`` later (a live worker elsewhere is only polled)."""
        waits = [lane.local.wait_for_outcome(count, timeout)
                 for lane, count in zip(self._lanes, seen, strict=False)
                 if lane.local is not None]
        if not waits:
            await asyncio.sleep(timeout)
        elif len(waits) == 1:
            await waits[0]
        else:
            tasks = [asyncio.ensure_future(wait) for wait in waits]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:  # cancelling one never cancels the worker's own future
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def finished(self, job_ids: Iterable[str]) -> None:
        """These jobs are over: no lane needs to take them any more."""
        done = list(job_ids)
        for lane in self._lanes:
            lane.view.disallow(done)

    async def tend(self) -> None:
        """Raise if a local worker stopped; start one where no worker serves a queue that has
        unfinished own jobs (looking for live workers at most every ``check_interval``)."""
        for lane in self._lanes:
            if lane.stopped is not None and lane.stopped.done():
                error = None if lane.stopped.cancelled() else lane.stopped.exception()
                raise DocworkersError(f"the local worker stopped unexpectedly: "
                                      f"{error or 'no error given'}")
        if time.monotonic() - self._checked < self.check_interval:
            return
        self._checked = time.monotonic()
        for lane in self._lanes:
            if lane.local is None and lane.view.job_ids:
                await self._tend(lane)

    async def _tend(self, lane: _Lane) -> None:
        live = await live_worker(lane.view)
        prefix = f"{lane.label}: " if lane.label else ""
        if live is not None:
            if live != lane.live:
                self.console.print(f"{prefix}a worker is running ({esc(live)}): waiting for it")
            lane.live = live
            return
        gone = f"the worker {esc(lane.live)} went away; " if lane.live else ""
        self.console.print(f"{prefix}{gone}processing here (no worker is running)")
        worker = lane.make_worker(lane.view)
        await worker.start()
        lane.local = worker
        lane.stopped = asyncio.create_task(worker.wait())

    async def close(self) -> None:
        """Stop the local workers (running jobs get the shutdown timeout to finish)."""
        for lane in self._lanes:
            if lane.local is not None:
                await lane.local.stop()
            if lane.stopped is not None:
                if not lane.stopped.done():
                    lane.stopped.cancel()
                await asyncio.gather(lane.stopped, return_exceptions=True)

    async def __aenter__(self) -> OwnJobs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def live_worker(repo: RedisJobRepository) -> str | None:
    """The name of a live worker that takes any job of ``repo``'s queue, if there is one."""
    from docworkers.queue.repository import serving_workers

    serving = serving_workers(await repo.list_workers())
    return str(serving[0].get("worker_name", "?")) if serving else None


def local_worker(runtime: Runtime, job_type: str, name: str) -> WorkerFactory:
    """A factory of the worker ``runtime`` runs for ``job_type``, on a restricted view of the
    type's queue."""

    def make(view: RestrictedJobRepository) -> BaseWorker:
        return runtime.job_worker(job_type, name, job_repo=view)

    return make


def over(jobs: Mapping[str, Any]) -> list[str]:
    """The ids among ``jobs`` (id -> Job, or None when gone) that are over: finished or gone."""
    return [job_id for job_id, job in jobs.items() if job is None or job.is_terminal]
