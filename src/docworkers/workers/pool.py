"""WorkerPool: run several workers as one unit."""

from __future__ import annotations

import asyncio
import logging
from typing import Self

from docworkers.errors import ConfigurationError
from docworkers.workers.protocol import Worker
from docworkers.workers.stats import WorkerStats

log = logging.getLogger("docworkers.pool")


class WorkerPool:
    """Holds workers by unique name; starts and stops them together, concurrently."""

    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}

    def add_worker(self, worker: Worker) -> None:
        if worker.name in self._workers:
            raise ConfigurationError("worker_name", f"a worker named {worker.name!r} is "
                                     "already in the pool; names must be unique")
        self._workers[worker.name] = worker

    async def remove_worker(self, name: str) -> Worker:
        """Remove a worker (stopping it first if it runs)."""
        worker = self.get_worker(name)
        if worker.is_running():
            await worker.stop()
        del self._workers[name]
        return worker

    def get_worker(self, name: str) -> Worker:
        try:
            return self._workers[name]
        except KeyError:
            raise KeyError(f"no worker named {name!r} in the pool") from None

    @property
    def workers(self) -> list[Worker]:
        return list(self._workers.values())

    def __len__(self) -> int:
        return len(self._workers)

    async def start_all(self) -> None:
        """Start every worker; if one fails to start, stop the others and re-raise."""
        results = await asyncio.gather(*(w.start() for w in self.workers),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop_all()
            raise errors[0]

    async def stop_all(self) -> None:
        """Stop every worker concurrently, each within its own shutdown timeout."""
        results = await asyncio.gather(*(w.stop() for w in self.workers),
                                       return_exceptions=True)
        for worker, result in zip(self.workers, results, strict=True):
            if isinstance(result, BaseException):
                log.error("worker %s failed to stop cleanly: %r", worker.name, result)

    def get_all_stats(self) -> dict[str, WorkerStats]:
        return {name: w.stats() for name, w in self._workers.items()}

    async def __aenter__(self) -> Self:
        await self.start_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_all()
