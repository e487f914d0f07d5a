"""Merge concurrent single-job enqueues into shared script calls.

Many producers (say, API requests) calling ``repo.enqueue`` at once would each pay a full
round trip and redis-py's per-command overhead. A :class:`Coalescer` sends a lone call at once;
calls that arrive while one is on the wire wait for it and then go together, up to ``limit``
per call. Every caller still returns only after its own job is stored, and gets the error of
the call that carried it; arrival order is kept, so FIFO within a priority holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Calls ``send(items)`` with one item when idle, else with the items that queued up."""

    def __init__(self, send: Callable[[list[T]], Awaitable[object]], *, limit: int) -> None:
        self._send = send
        self._limit = limit
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None  # a reference keeps the task alive

    async def submit(self, item: T) -> None:
        if self._busy:
            done = asyncio.get_running_loop().create_future()
            self._waiting.append((item, done))
            await done
            return
        self._busy = True
        try:
            await self._send([item])
        finally:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._waiting:
            self._drainer = asyncio.create_task(self._drain(), name="enqueue-coalescer")
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._limit]
                del self._waiting[: self._limit]
                try:
                    await self._send([item for item, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                except BaseException:
                    for _, done in batch:
                        done.cancel()
                    raise
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._busy = False
            for _, done in self._waiting:  # only if cancelled: do not leave callers hanging
                done.cancel()
            self._waiting.clear()
