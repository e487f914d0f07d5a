"""Long-lived worker processes: a pool run until a signal, and a supervisor of several processes.

:func:`run_pool` runs the workers of one process. It waits for Redis (and whatever else
``retry_on`` names) at start, stops cleanly on the first SIGINT/SIGTERM (stop fetching, let
running jobs finish within the shutdown timeout, hand the rest back) and exits at once on a
second one (the jobs still leased return to the queue when their lease expires); a worker that
stops on an error stops the others, with exit code 1 for the supervisor above to see.

:func:`run_processes` spawns such processes (each runs ``target(index)``, typically
:func:`run_pool` in a fresh runtime) in a
:class:`~docworkers.workers.process_pool.ProcessPool`, scales them with the backlog of the
queues they serve, and publishes the pool's state where ``docworkers stats`` looks. SIGINT or
SIGTERM stops the children with SIGTERM, a second one with SIGKILL.

The front door (``docworkers worker``) only parses options and builds the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol

from docworkers.queue.repository import RedisJobRepository, RepositoryConfig
from docworkers.workers.base import BaseWorker
from docworkers.workers.event_loop import DEFAULT_EVENT_LOOP, run, running_loop_name
from docworkers.workers.pool import WorkerPool
from docworkers.workers.process_pool import ProcessPool, ProcessScalingConfig
from docworkers.workers.startup import start_when_ready

__all__ = ["run_pool", "run_processes", "wait_until_ready"]

log = logging.getLogger("docworkers.supervisor")

EXIT_FAILURE = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Companion(Protocol):
    """Something that runs beside the workers (a scheduler): started after them, stopped
    before them."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@contextlib.contextmanager
def _handling(signals: Sequence[signal.Signals], first: Callable[[int], None],
              again: Callable[[int], None]) -> Iterator[None]:
    """While inside: ``first(signum)`` on the first of ``signals``, ``again`` on later ones."""
    received = 0

    def handler(signum: int) -> None:
        nonlocal received
        received += 1
        (first if received == 1 else again)(signum)

    loop = asyncio.get_running_loop()
    for signum in signals:
        loop.add_signal_handler(signum, handler, signum)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def run_pool(build: Callable[[], Sequence[BaseWorker]], *,
                   retry_on: tuple[type[Exception], ...], startup_timeout: float | None,
                   shutdown_timeout: float, signals: Sequence[signal.Signals] = STOP_SIGNALS,
                   companions: Sequence[Companion] = ()) -> int:
    """Run the workers ``build`` makes until a signal; 0 on a clean stop, else 1.

    The workers are built anew on each start attempt (building may connect to a server that
    is down); a start failing with one of ``retry_on`` is retried for ``startup_timeout``
    seconds (None: until it works, 0: once) — see :func:`~docworkers.workers.startup.
    start_when_ready`.
    """
    pool, workers = WorkerPool(), list[BaseWorker]()

    async def start() -> list[BaseWorker]:
        nonlocal pool, workers
        pool, workers = WorkerPool(), list(build())
        for worker in workers:
            pool.add_worker(worker)
        try:
            await pool.start_all()  # stops the started ones if one fails
        except asyncio.CancelledError:  # a signal while starting
            await pool.stop_all()
            raise
        return workers

    stop = asyncio.Event()

    def first(signum: int) -> None:
        log.info("%s received: stopping (up to %.0fs for running jobs)%s",
                 signal.Signals(signum).name, shutdown_timeout,
                 "; press Ctrl-C again to exit at once" if signal.SIGINT in signals else "")
        stop.set()

    def again(signum: int) -> None:
        log.warning("second signal: exiting now; leased jobs return to the queue when their "
                    "lease expires")
        os._exit(EXIT_FAILURE)

    with _handling(signals, first, again):
        if await start_when_ready(start, retry_on=retry_on, stop=stop,
                                  timeout=startup_timeout, logger=log) is None:
            log.info("stopped before the workers could start")
            return 0
        log.info("workers: %s (event loop: %s)", ", ".join(
            f"{w.name} on queue {w.repo.queue}" for w in workers), running_loop_name())
        return await _serve(pool, workers, stop, companions)


async def wait_until_ready(check: Callable[[], Awaitable[object]], *,
                           retry_on: tuple[type[Exception], ...], timeout: float | None) -> bool:
    """Run ``check`` until it passes, retried as :func:`run_pool` retries its start (e.g. before
    a server's in-process workers start); False if SIGINT/SIGTERM came first."""
    stop = asyncio.Event()
    with _handling(STOP_SIGNALS, lambda signum: stop.set(), lambda signum: stop.set()):
        return await start_when_ready(check, retry_on=retry_on, stop=stop, timeout=timeout,
                                      logger=log) is not None


async def _serve(pool: WorkerPool, workers: Sequence[BaseWorker], stop: asyncio.Event,
                 companions: Sequence[Companion]) -> int:
    """Until ``stop`` is set or a worker stops on its own; then stop everything."""
    for companion in companions:
        await companion.start()
    waits = [asyncio.create_task(w.wait()) for w in workers]
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopping, *waits], return_when=asyncio.FIRST_COMPLETED)
    crashed = stopping not in done
    for companion in reversed(companions):
        await companion.stop()
    await pool.stop_all()
    results = await asyncio.gather(*waits, return_exceptions=True)
    stopping.cancel()
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        log.error("a worker stopped on an error: %r", failure)
    return EXIT_FAILURE if crashed or failures else 0


def run_processes(target: Callable[[int], Any], scaling: ProcessScalingConfig, *,
                  redis_url: str, home_queue: str, queues: Sequence[str],
                  event_loop: str = DEFAULT_EVENT_LOOP) -> int:
    """Run spawned worker processes (``target(index)`` each, picklable) until SIGINT/SIGTERM:
    a fixed number, or between the bounds of ``scaling`` from the backlog of ``queues``. The
    pool's state is published on ``home_queue``. Returns the exit code (1 if a child failed).
    """
    if not scaling.fixed:
        log.info("autoscaling between %d and %d worker processes (one per %d waiting jobs; "
                 "one retires after %.0fs of a smaller backlog)", scaling.min_processes,
                 scaling.max_processes, scaling.jobs_per_process, scaling.scale_down_delay)
    pool = ProcessPool(target, scaling)
    code = run(_supervise(pool, redis_url=redis_url, home_queue=home_queue,
                          queues=list(queues)), loop=event_loop)
    return EXIT_FAILURE if code else 0


async def _supervise(pool: ProcessPool, *, redis_url: str, home_queue: str,
                     queues: list[str]) -> int:
    home = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue=home_queue))
    repos = [home.for_queue(q) for q in queues]
    name = f"{socket.gethostname()}:{os.getpid()}"
    ttl = max(10.0, pool.config.interval * 5)

    async def depth() -> int:
        if pool.config.fixed:
            return 0  # nothing to decide: do not poll Redis
        return sum(await asyncio.gather(*(r.queue_depth() for r in repos)))

    async def publish(status: dict[str, object] | None) -> None:
        if status is not None:
            status = {**status, "name": name, "queues": queues}
        await home.publish_supervisor(name, status or {}, 0 if status is None else ttl)

    def first(signum: int) -> None:
        log.info("%s received: stopping %d worker process(es)", signal.Signals(signum).name,
                 len(pool.running))
        pool.stop(signal.SIGTERM)

    try:
        with _handling(STOP_SIGNALS, first, lambda signum: pool.stop(signal.SIGKILL)):
            return await pool.run(depth, publish)
    finally:
        await home.close()  # the others share its connections
