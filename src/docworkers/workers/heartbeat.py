"""The heartbeat: every ``lease_timeout / 3``, renew the leases of the running jobs and publish
the worker's stats, in one script call.

The reply says which jobs someone asked to cancel (their context raises JobCancelledError at the
handler's next ``ctx.progress()``) and which leases are lost: those jobs belong to another
worker now (or lease recovery requeued them), so any result of this attempt would be refused by
fencing. Such a job is marked (``ctx.lease_lost``) and, while in ``process()``, its task is
cancelled at once; the job loop then records nothing for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from docworkers.errors import RepositoryError
from docworkers.queue.protocol import WorkerRepository
from docworkers.workers.loops import Log, Periodic
from docworkers.workers.slots import Slots
from docworkers.workers.stats import WorkerStats


class Heartbeat:
    """Lease renewal, stats publishing and cancel/lease-lost news for one worker."""

    def __init__(self, repo: WorkerRepository, slots: Slots, *, name: str, lease: float,
                 interval: float, stats: Callable[[], WorkerStats], log: Log) -> None:
        self.repo = repo
        self.name = name
        self.lease = lease
        self._slots = slots
        self._stats = stats
        self._loop = Periodic(f"{name}-heartbeat", interval, self.beat,
                              lambda exc: log.warning("heartbeat failed: %s", exc))

    async def beat(self, ttl: float | None = None) -> None:
        """One heartbeat now; the published stats live ``ttl`` seconds (default: a lease)."""
        running = list(self._slots.running.values())
        lost, cancel = await self.repo.heartbeat(
            self.name, self._stats().to_dict(), self.lease if ttl is None else ttl,
            self.lease, [(r.job.id, r.job.token) for r in running],
        )
        by_id = {r.job.id: r for r in running}
        for job_id in cancel:
            if job_id in by_id:
                by_id[job_id].ctx.cancel_requested = True
        for job_id in lost:
            entry = by_id.get(job_id)
            if entry is not None and job_id not in cancel:
                entry.ctx.lease_lost = True
                if entry.in_handler:
                    entry.task.cancel()  # its result would be refused by fencing: stop now

    def start(self) -> None:
        self._loop.start()

    def close(self) -> None:
        self._loop.close()

    async def stop(self, timeout: float) -> None:
        """End the loop (within ``timeout``), then withdraw the published stats."""
        await self._loop.stop(timeout)
        with contextlib.suppress(RepositoryError, OSError):
            await self.beat(ttl=0)
