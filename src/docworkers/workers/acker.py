"""Acknowledgements: finished jobs are completed in batches, in as few round trips as possible.

A finished job's result waits here. When the fetcher is about to reserve, it takes the waiting
results and sends their completion in the same pipeline (:meth:`Acker.take`); otherwise the
acker's own loop sends them one event-loop turn later, as one script call for the whole batch.
While the fetcher has a reservation on the wire (:meth:`Acker.carried_by`), the acker waits for
it instead: the fetcher takes the results for its next reservation, or, if it has no free slot
or goes to wait for work, wakes the acker (:meth:`poke`) to send them. In a drain that saves a
round trip per finished job (jobs finish while the fetcher is out reserving).
A completion refused by fencing is a stale attempt: the worker that took the job over counts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from docworkers.errors import RepositoryError
from docworkers.queue.job import Job
from docworkers.queue.protocol import WorkerRepository
from docworkers.workers.loops import Log, outage_pause, wait_or_cancel


@dataclass(slots=True)
class Ack:
    """A finished job waiting for its completion to be stored."""

    job: Job
    result: Any
    duration: float  # seconds the attempt took


def completions(acks: Sequence[Ack]) -> list[tuple[str, int, Any]]:
    """What the repository's complete calls take."""
    return [(a.job.id, a.job.token, a.result) for a in acks]


class Acker:
    """Completes finished jobs in batches; ``settled`` is called for each stored completion."""

    def __init__(self, repo: WorkerRepository, *, settled: Callable[[Ack], None], log: Log,
                 outage_cap: float) -> None:
        self.repo = repo
        self.log = log
        self._settled = settled
        self._outage_cap = outage_cap
        self._pending: list[Ack] = []
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._carrier: Callable[[], bool] = lambda: False

    def carried_by(self, in_flight: Callable[[], bool]) -> None:
        """Hold completions while ``in_flight()``: a reservation is on the wire whose caller
        takes them next or pokes the acker."""
        self._carrier = in_flight

    def poke(self) -> None:
        """Look at the waiting completions again (the carrier's round trip ended)."""
        if self._pending:
            self._ready.set()

    def add(self, ack: Ack) -> None:
        self._pending.append(ack)
        self._ready.set()

    def take(self) -> list[Ack]:
        """The waiting completions, for the caller to send (see :meth:`settle`)."""
        acks, self._pending = self._pending, []
        return acks

    def put_back(self, acks: list[Ack]) -> None:
        """Completions taken but maybe not stored (the round trip failed): send them again."""
        self._pending[:0] = acks

    def settle(self, acks: Sequence[Ack], oks: Sequence[bool]) -> None:
        """Account for sent completions: ``oks`` says which ones fencing accepted."""
        for ack, ok in zip(acks, oks, strict=True):
            if ok:
                self._settled(ack)
            else:  # a stale attempt: the worker that took the job over counts it
                self.log.warning("job %s: completion rejected by fencing (lease taken over)",
                                 ack.job.id)

    def start(self, name: str = "ack") -> None:
        self._closing.clear()
        self._task = asyncio.create_task(self._loop(), name=name)

    async def stop(self, timeout: float) -> None:
        """Store what is waiting (giving up after a few failed tries: the leases of those jobs
        expire and they run again), then end the loop within ``timeout``."""
        self._closing.set()
        self._ready.set()
        await self.flush(final=True)
        if self._task is not None:
            await wait_or_cancel([self._task], timeout)

    async def _loop(self) -> None:
        while not self._closing.is_set():
            await self._ready.wait()
            self._ready.clear()
            await asyncio.sleep(0)  # let the fetcher piggy-back these acks if it can
            if self._carrier():
                continue  # its round trip ends with a reservation carrying them, or a poke
            await self.flush()

    async def flush(self, final: bool = False) -> None:
        outages = 0
        while self._pending:
            acks = self.take()
            try:
                oks = await self.repo.complete_many(completions(acks))
            except RepositoryError as exc:
                self.put_back(acks)
                outages += 1
                if final and outages > 3:
                    self.log.error("could not store %d completion(s) before stopping; their "
                                   "leases will expire and the jobs run again", len(acks))
                    self._pending.clear()
                    return
                await outage_pause(outages, exc, self.log, self._outage_cap)
                continue
            self.settle(acks, oks)
