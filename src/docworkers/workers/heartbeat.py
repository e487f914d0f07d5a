"""The heartbeat: every ``lease_timeout / 3``, renew the leases of the running jobs and publish
the worker's stats, in one script call; in between, publish the stats alone every
:data:`STATS_PERIOD` and soon after a job finishes, so what ``docworkers stats`` and the
dashboard show is at most about a second old.

A stats-only publication is the same script with no job to renew: one EVALSHA running TIME,
SET (the stats, ``PX`` a lease), ZADD and ZREMRANGEBYSCORE on the workers registry, i.e. four
commands and ~0.7 KB of JSON per worker per second when idle; a busy worker publishes at most
once per :data:`STATS_MIN_GAP` (4/s). Leases are renewed exactly as before: every
``lease_timeout / 3``, never by a stats-only publication.

The renewal's reply says which jobs someone asked to cancel (their context raises
JobCancelledError at the handler's next ``ctx.progress()``) and which leases are lost: those
jobs belong to another worker now (or lease recovery requeued them), so any result of this
attempt would be refused by fencing. Such a job is marked (``ctx.lease_lost``) and, while in
``process()``, its task is cancelled at once; the job loop then records nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from docworkers.errors import RepositoryError
from docworkers.queue.protocol import WorkerRepository
from docworkers.workers.loops import Log, wait_or_cancel
from docworkers.workers.slots import Slots
from docworkers.workers.stats import WorkerStats

STATS_PERIOD = 1.0  # seconds between publications of the stats (at most; never over a lease/3)
STATS_MIN_GAP = 0.25  # seconds: a finished job publishes at once unless the last one is younger


class Heartbeat:
    """Lease renewal, stats publishing and cancel/lease-lost news for one worker."""

    def __init__(self, repo: WorkerRepository, slots: Slots, *, name: str, lease: float,
                 interval: float, stats: Callable[[], WorkerStats], log: Log,
                 stats_period: float = STATS_PERIOD) -> None:
        self.repo = repo
        self.name = name
        self.lease = lease
        self.interval = interval  # lease renewal
        self.stats_period = min(stats_period, interval)
        self._slots = slots
        self._stats = stats
        self._log = log
        self._renewed = self._published = time.monotonic()  # when last sent (or tried)
        self._changed = False  # a job finished since the last publication
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def beat(self, ttl: float | None = None) -> None:
        """Renew the leases and publish the stats now; the stats live ``ttl`` seconds (default:
        a lease; 0 withdraws them)."""
        self._renewed = self._published = time.monotonic()
        self._changed = False
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

    async def publish(self) -> None:
        """Publish the stats alone (no lease is renewed, no news comes back)."""
        self._published = time.monotonic()
        self._changed = False
        await self.repo.heartbeat(self.name, self._stats().to_dict(), self.lease, self.lease, [])

    def stats_changed(self) -> None:
        """A job finished: publish soon (at once unless the last publication is younger than
        STATS_MIN_GAP), so a finished job shows in the stats within a fraction of a second.
        Only the first job since the last publication wakes the loop: each wake-up costs the
        loop a timed wait (a task), and in a drain jobs finish thousands of times a second."""
        if not self._changed:
            self._changed = True
            self._wake.set()

    def _next_due(self) -> float:
        due = min(self._renewed + self.interval, self._published + self.stats_period)
        if self._changed:
            due = min(due, self._published + STATS_MIN_GAP)
        return due

    async def _loop(self) -> None:
        """Sleep until the next renewal or publication is due (a finished job or close() wakes
        it), then do it; a failure is logged and the loop carries on."""
        while not self._closing.is_set():
            self._wake.clear()
            delay = self._next_due() - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue  # woken or due: look again
            renew = time.monotonic() >= self._renewed + self.interval
            try:
                await (self.beat() if renew else self.publish())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if renew:
                    self._log.warning("heartbeat failed: %s", exc)
                else:  # every second in an outage: the renewal's warning says it
                    self._log.debug("publishing stats failed: %s", exc)

    def start(self) -> None:
        self._closing.clear()
        self._task = asyncio.create_task(self._loop(), name=f"{self.name}-heartbeat")

    def close(self) -> None:
        """Ask the loop to end after the call it may be making; returns at once."""
        self._closing.set()
        self._wake.set()

    async def stop(self, timeout: float) -> None:
        """End the loop (within ``timeout``), then withdraw the published stats."""
        self.close()
        if self._task is not None:
            await wait_or_cancel([self._task], timeout)
        with contextlib.suppress(RepositoryError, OSError):
            await self.beat(ttl=0)
