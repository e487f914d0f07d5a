"""Starting while a server is down: try again with capped backoff instead of exiting.

A worker process started during a Redis or Chroma outage (a deploy, a host reboot, a
supervisor restarting it mid-outage) used to exit at once; under a supervisor that gives up
after a few quick failures it then stayed down after the servers came back. Like Celery
(``broker_connection_retry_on_startup``) and Sidekiq, :func:`start_when_ready` retries the
start, logging every failed attempt, until it works, a time limit passes (its last error is
raised) or a stop is requested (SIGTERM while waiting is a clean exit, not an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from docworkers.workers.backoff import backoff_delay

T = TypeVar("T")

FIRST_DELAY = 0.5  # seconds before the second attempt; doubles (full jitter) up to the cap
MAX_DELAY = 10.0  # longest wait between attempts: how late a returning server is noticed


async def start_when_ready(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[Exception], ...],
    stop: asyncio.Event,
    timeout: float | None = None,
    logger: logging.Logger,
    base: float = FIRST_DELAY,
    cap: float = MAX_DELAY,
    clock: Callable[[], float] = time.monotonic,
) -> T | None:
    """Run ``attempt`` until it returns, and return its value.

    An exception in ``retry_on`` is logged and the attempt repeated after
    ``backoff_delay(n, base, cap)`` seconds; any other exception propagates at once.
    ``timeout`` bounds the whole wait in seconds (None: keep trying; 0: a single attempt):
    when the next attempt would start past it, the last error is raised. Setting ``stop``
    cancels the attempt in flight or the pause and returns None.
    """
    deadline = None if timeout is None else clock() + timeout
    failures = 0
    while not stop.is_set():
        task = asyncio.ensure_future(attempt())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not task.done():  # stopped mid-attempt
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            return None
        try:
            return task.result()
        except retry_on as exc:
            failures += 1
            delay = backoff_delay(failures, base=base, cap=cap)
            if deadline is not None and clock() + delay > deadline:
                if timeout:
                    logger.error("giving up after %d attempt(s) in %.0fs (startup timeout)",
                                 failures, timeout)
                raise
            logger.warning("start attempt %d failed, retrying in %.1fs%s: %s", failures,
                           delay, "" if deadline is None
                           else f" (giving up in {max(0.0, deadline - clock()):.0f}s)", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    return None
