"""The jobs a worker runs right now, and how many it may run at once (its concurrency limit).

The job loop adds and releases jobs, the fetcher reserves only for free slots, the heartbeat
renews the leases of the running jobs and the autoscaler moves the limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from docworkers.queue.job import Job
from docworkers.workers.context import JobContext


@dataclass(slots=True)
class Running:
    """One job attempt in flight."""

    job: Job
    ctx: JobContext
    started: float  # time.monotonic() when the job was handed to the worker
    task: asyncio.Task[None] = field(init=False)  # set right after the entry is made
    in_handler: bool = False  # inside process(): a lost lease cancels the task


class Slots:
    """Running jobs by id (``running``: the job loop adds to it directly, on the hot path),
    the limit on how many, and an event set whenever one frees."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running: dict[str, Running] = {}
        self._freed = asyncio.Event()

    @property
    def free(self) -> int:
        return self.limit - len(self.running)

    def release(self, job_id: str) -> None:
        self.running.pop(job_id, None)
        self._freed.set()

    def set_limit(self, limit: int) -> None:
        grew = limit > self.limit
        self.limit = limit
        if grew:
            self._freed.set()  # the fetcher may be waiting for a free slot

    async def wait_freed(self) -> None:
        """Wait until a slot frees (or the limit grows, or :meth:`wake` is called)."""
        self._freed.clear()
        await self._freed.wait()

    def wake(self) -> None:
        """End a :meth:`wait_freed` in progress (the worker is stopping)."""
        self._freed.set()
