"""What the worker's background loops share: a periodic step that never dies, the pause after a
Redis outage, and waiting for tasks with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from docworkers.workers.backoff import backoff_delay

Log = logging.LoggerAdapter[logging.Logger]


class Periodic:
    """Runs ``step`` every ``interval`` seconds in a task of its own, from :meth:`start` until
    :meth:`close`. A failing step goes to ``failed`` and the loop carries on: background loops
    never die silently."""

    def __init__(self, name: str, interval: float, step: Callable[[], Awaitable[None]],
                 failed: Callable[[Exception], None]) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._failed = failed
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._closing.clear()
        self._task = asyncio.create_task(self._loop(), name=self.name)

    def close(self) -> None:
        """Ask the loop to end after the step it may be running; returns at once."""
        self._closing.set()

    async def stop(self, timeout: float) -> None:
        """:meth:`close`, then wait up to ``timeout`` for the loop to end (else cancel it)."""
        self.close()
        if self._task is not None:
            await wait_or_cancel([self._task], timeout)

    async def _loop(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.interval)
            if self._closing.is_set():
                return
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)


async def wait_or_cancel(tasks: Iterable[asyncio.Task[None]], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``tasks``; cancel those still running then."""
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=timeout)
    for task in late:
        task.cancel()


async def outage_pause(outages: int, exc: Exception, log: Log, cap: float) -> None:
    """Sleep before the ``outages``-th retry of a Redis call (capped backoff); the first
    failure and every 20th are warnings, the rest debug records."""
    delay = backoff_delay(outages, base=0.1, cap=cap)
    level = logging.WARNING if outages == 1 or outages % 20 == 0 else logging.DEBUG
    log.log(level, "Redis unavailable (attempt %d), retrying in %.2fs: %s", outages, delay, exc)
    await asyncio.sleep(delay)
