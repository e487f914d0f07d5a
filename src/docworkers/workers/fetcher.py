"""The fetcher: reserve jobs while the worker has free slots, and wait on Redis when there are none.

Each reservation also carries the completions waiting in the acker (one round trip for both).
When a reservation comes back short, the next one is sent together with a BLMOVE on the queue's
intake list on the waiter's own connection (:mod:`docworkers.queue.waiter`), so a new job
reaches an idle worker in one round trip; ``poll_interval`` (or the next delayed job) bounds the
wait. Fair priority: the last ``urgent_slots`` free slots only take jobs of at least
``urgent_priority``.

Only waits may be cancelled: cancelling a round trip could lose its reply after Redis ran it (a
reservation, whose jobs would sit leased until the lease ran out, or completions).
:meth:`Fetcher.stop` therefore cancels the loop while it waits, interrupts a blocked
wait-and-reserve, and otherwise lets the round trip finish; jobs reserved after stop began are
handed back at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from docworkers.errors import RepositoryError
from docworkers.queue.job import Job
from docworkers.queue.protocol import Reservation, Waiter, WorkerRepository
from docworkers.queue.waiter import MAX_BLOCK
from docworkers.queue.waiter import Waiter as RedisWaiter
from docworkers.workers.acker import Acker, completions
from docworkers.workers.config import WorkerConfig
from docworkers.workers.loops import Log, outage_pause
from docworkers.workers.slots import Slots

_T = TypeVar("_T")


class Fetcher:
    """Reserves jobs for ``slots`` and hands each to ``spawn`` (see the module docstring)."""

    def __init__(self, repo: WorkerRepository, config: WorkerConfig, *, worker_id: str,
                 slots: Slots, acker: Acker, spawn: Callable[[Job], None], log: Log) -> None:
        self.repo = repo
        self.config = config
        self.worker_id = worker_id
        self.log = log
        self._slots = slots
        self._acker = acker
        self._spawn = spawn
        self._outage_cap = max(config.poll_interval, 1.0)
        self._waiter: Waiter | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = False  # the loop waits, with no round trip in flight
        self._blocked = False  # the loop is in a wait-and-reserve round trip
        self._reserving = False  # a reservation that will loop back to reserving is in flight
        self._started: Reservation | None = None  # its jobs were started as its reply came in
        acker.carried_by(lambda: self._reserving)

    async def connect(self) -> None:
        """Open the waiter's connection (raises if Redis is down)."""
        waiter = self.repo.waiter()
        await waiter.connect()
        if isinstance(waiter, RedisWaiter):
            waiter.start_with(self._start_early)
        self._waiter = waiter

    def start(self, name: str = "fetch") -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=name)

    async def close(self) -> None:
        """Close the waiter's connection (after :meth:`stop`)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            await waiter.close()

    async def _loop(self) -> None:
        outages = 0
        block: float | None = None  # seconds to wait for work before reserving; None: no wait
        while not self._stopping:
            free = self._slots.free
            if free <= 0:
                await self._wait(self._slots.wait_freed())
                continue
            urgent_only = free <= self.config.urgent_slots
            min_priority = self.config.urgent_priority if urgent_only else None
            want = min(free if urgent_only else free - self.config.urgent_slots,
                       self.config.batch_size)
            acks = self._acker.take() if block is None else []  # when idle the acker sends them
            try:
                if block is None:
                    self._reserving = True
                    try:
                        oks, reservation = await self.repo.complete_and_reserve(
                            completions(acks), self.worker_id, want, self.config.lease_timeout,
                            self.config.max_retries, min_priority=min_priority,
                        )
                    finally:
                        self._reserving = False
                        self._acker.poke()  # completions that came meanwhile: see acker.py
                else:
                    oks, reservation = [], await self._wait_and_reserve(block, want,
                                                                        min_priority)
                outages = 0
            except asyncio.CancelledError:
                self._acker.put_back(acks)  # maybe not stored: the final flush sends them
                raise
            except RepositoryError as exc:
                self._acker.put_back(acks)
                outages += 1
                await self._wait(outage_pause(outages, exc, self.log, self._outage_cap))
                continue
            self._acker.settle(acks, oks)
            started, self._started = reservation is self._started, None
            if self._stopping:  # stop() began during the round trip: start no new work
                if reservation.jobs and not started:
                    await self.hand_back(reservation.jobs)
                return  # (jobs started already run on: the worker's stop drains them)
            if not started:
                for job in reservation.jobs:
                    self._spawn(job)
            if len(reservation.jobs) >= want:
                block = None  # there may be more: reserve again as soon as slots are free
                continue
            block = self.config.poll_interval
            if reservation.next_due is not None:
                block = min(block, max(0.0, reservation.next_due - time.time()))
            if reservation.jobs and not started:
                await asyncio.sleep(0)  # let the new jobs start before the next wait is sent

    def _start_early(self, reservation: Reservation) -> None:
        """The waiter's reservation, as soon as its reply is in (see Waiter.start_with): its
        jobs start one turn of the event loop sooner than after the round trip returns, unless
        stop() has begun (the loop hands them back then, as any reservation made meanwhile)."""
        if self._stopping:
            return
        for job in reservation.jobs:
            self._spawn(job)
        self._started = reservation

    async def _wait_and_reserve(self, timeout: float, want: int,
                                min_priority: int | None) -> Reservation:
        """Block until woken (or ``timeout``), then reserve: one round trip, not cancellable
        (stop() interrupts it instead)."""
        assert self._waiter is not None, "connect() first"
        self._blocked = True
        try:
            return await self._waiter.wait_and_reserve(
                timeout, self.worker_id, want, self.config.lease_timeout,
                self.config.max_retries, min_priority=min_priority,
            )
        finally:
            self._blocked = False

    async def _wait(self, wait: Awaitable[_T]) -> _T:
        """Await ``wait`` as a point where stop() may cancel the loop (only waits are)."""
        self._idle = True
        try:
            return await wait
        finally:
            self._idle = False

    async def stop(self) -> None:
        """End the loop: cancel it while it waits, interrupt a blocked wait-and-reserve, and
        otherwise let its round trip finish."""
        self._stopping = True
        fetch = self._task
        if fetch is None:
            return
        self._slots.wake()
        deadline = time.monotonic() + MAX_BLOCK + 5.0  # a round trip or blocked wait ends by then
        while not fetch.done() and time.monotonic() < deadline:
            if self._idle:
                fetch.cancel()
            elif self._blocked and self._waiter is not None:
                try:
                    await self._waiter.interrupt()
                except RepositoryError as exc:  # e.g. CLIENT denied by ACL: the wait times out
                    self.log.debug("could not interrupt the wait for work: %s", exc)
            await asyncio.wait([fetch], timeout=0.05)
        if not fetch.done():
            fetch.cancel()
            await asyncio.wait([fetch], timeout=1.0)

    async def hand_back(self, jobs: Sequence[Job]) -> None:
        """Return reserved jobs to the queue without counting an attempt (shutdown)."""
        try:
            n = await self.repo.release([(job.id, job.token) for job in jobs])
            self.log.info("handed %d unfinished job(s) back to the queue", n)
        except RepositoryError as exc:
            self.log.warning("could not hand back %d job(s) (%s); their leases will expire "
                             "and they will run again", len(jobs), exc)
