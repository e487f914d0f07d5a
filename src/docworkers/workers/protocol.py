"""The contract every worker meets, so a pool can run any of them."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from docworkers.workers.stats import WorkerStats


@runtime_checkable
class Worker(Protocol):
    @property
    def name(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def is_running(self) -> bool: ...

    def stats(self) -> WorkerStats: ...
