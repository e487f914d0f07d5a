"""Worker processes, started and retired with the backlog: the pool-level half of autoscaling.

One process per core is the most a CPU-bound job (parsing, embedding) can use, but every process
holds its own model (~450 MB). :class:`ProcessPool` keeps between ``min_processes`` and
``max_processes`` spawned children, each running its own worker pool: it adds processes as soon
as the backlog calls for them (``jobs_per_process`` waiting jobs each) and retires one, the
newest, only after the backlog has stayed smaller for ``scale_down_delay`` seconds, so a short
lull does not throw away a loaded model. Retiring is SIGTERM: the child stops cleanly (running
jobs finish or are handed back), as at any shutdown.

A child that exits with an error (not one being retired) stops the whole pool: a crash loop
should reach the supervisor (systemd, Kubernetes) rather than be hidden by restarts. The pool
publishes its state to Redis (``QueueStats.supervisors``, ``docworkers stats``, /metrics).

:class:`ProcessScaler` is the pure decision, with an injectable clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from docworkers.errors import ConfigurationError

__all__ = ["ProcessPool", "ProcessScaler", "ProcessScalingConfig"]

log = logging.getLogger("docworkers.process_pool")


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcessScalingConfig:
    """Bounds and pace of process autoscaling; min == max is a fixed pool."""

    min_processes: int = 1
    max_processes: int = 4
    jobs_per_process: int = 20  # waiting jobs that justify one more process
    scale_down_delay: float = 30.0  # a smaller backlog must last this long to retire one
    interval: float = 1.0  # seconds between two looks at the backlog

    def __post_init__(self) -> None:
        for name in ("min_processes", "max_processes", "jobs_per_process"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(name, f"must be an integer >= 1, got {value!r}")
        if self.max_processes < self.min_processes:
            raise ConfigurationError("max_processes", f"must be at least min_processes "
                                     f"({self.min_processes})")
        if self.scale_down_delay < 0:
            raise ConfigurationError("scale_down_delay", "must not be negative")
        if self.interval <= 0:
            raise ConfigurationError("interval", "must be positive")

    @property
    def fixed(self) -> bool:
        return self.min_processes == self.max_processes


class ProcessScaler:
    """How many processes to run for a backlog: up at once, down one at a time, late."""

    def __init__(self, config: ProcessScalingConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._low_since: float | None = None

    def wanted(self, depth: int) -> int:
        c = self.config
        return min(c.max_processes, max(c.min_processes, math.ceil(depth / c.jobs_per_process)))

    def decide(self, running: int, depth: int) -> tuple[int, str]:
        """(processes to run, reason): backlog, idle, cooling down or steady."""
        wanted = self.wanted(depth)
        if wanted > running:
            self._low_since = None
            return wanted, "backlog"
        if wanted == running:
            self._low_since = None
            return running, "steady"
        now = self.clock()
        if self._low_since is None:
            self._low_since = now
        if now - self._low_since < self.config.scale_down_delay:
            return running, "cooling down"
        self._low_since = now  # the next one waits a full delay again
        return running - 1, "idle"


@dataclass(slots=True)
class _Child:
    index: int
    process: BaseProcess
    retiring: bool = False


@dataclass(slots=True)
class PoolStatus:
    """What the pool publishes: also the answer to "how many processes, and why"."""

    processes: int = 0
    retiring: int = 0
    wanted: int = 0
    queue_depth: int = 0
    reason: str = "starting"
    started: int = 0
    retired: int = 0
    pids: list[int] = field(default_factory=list)


class ProcessPool:
    """Spawned children running ``target(index)``, scaled by a :class:`ProcessScaler`.

    ``target`` must be picklable (a module-level function or a functools.partial of one);
    each child gets a new ``index`` (never reused), e.g. for unique worker names.
    """

    def __init__(self, target: Callable[[int], Any], config: ProcessScalingConfig, *,
                 name: str = "docworkers-worker",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.config = config
        self.name = name
        self.scaler = ProcessScaler(config, clock)
        self.status = PoolStatus()
        self._context = multiprocessing.get_context("spawn")
        self._children: list[_Child] = []
        self._next_index = 0
        self.stopping = False
        self.failed = 0  # children (not retired ones) that exited with an error

    @property
    def running(self) -> list[BaseProcess]:
        """Live children that are not being retired."""
        return [c.process for c in self._children if not c.retiring and c.process.is_alive()]

    def alive(self) -> bool:
        return any(c.process.is_alive() for c in self._children)

    def start(self) -> None:
        """Start the minimum number of processes."""
        self._grow(self.config.min_processes)
        self._refresh()

    def step(self, depth: int) -> PoolStatus:
        """Reap exited children, then scale for ``depth`` waiting jobs (unless stopping)."""
        self.reap()
        if not self.stopping:
            running = len(self.running)
            wanted, reason = self.scaler.decide(running, depth)
            if wanted > running:
                log.info("backlog of %d: %d -> %d worker processes", depth, running, wanted)
                self._grow(wanted - running)
            elif wanted < running:
                log.info("backlog of %d for %.0fs: retiring a worker process (%d -> %d)",
                         depth, self.config.scale_down_delay, running, wanted)
                self._retire_newest()
            self.status.wanted, self.status.reason = wanted, reason
        self.status.queue_depth = depth
        self._refresh()
        return self.status

    async def run(self, depth: Callable[[], Awaitable[int]],
                  publish: Callable[[dict[str, Any] | None], Awaitable[None]] | None = None
                  ) -> int:
        """Start, then look at the backlog every ``interval`` until stopped and every child
        has exited; returns the exit code (see :meth:`exit_code`). Call :meth:`stop` (e.g.
        from a signal handler) to end it."""
        self.start()
        while not (self.stopping and not self.alive()):
            try:
                waiting = await depth()
            except Exception as exc:  # Redis away: keep the processes, look again later
                log.warning("could not read the queue depth: %s", exc)
                waiting = self.status.queue_depth
            self.step(waiting)
            if publish is not None:
                try:
                    await publish(self.describe())
                except Exception as exc:
                    log.debug("could not publish the pool status: %s", exc)
            await asyncio.sleep(0.2 if self.stopping else self.config.interval)
        if publish is not None:
            with contextlib.suppress(Exception):
                await publish(None)  # gone: withdraw the published status
        return self.exit_code()

    def reap(self) -> None:
        """Forget children that exited; a crash (not a retirement) stops the pool."""
        for child in list(self._children):
            code = child.process.exitcode
            if code is None:
                continue
            self._children.remove(child)
            if child.retiring:
                self.status.retired += 1
                if code != 0:
                    log.warning("retired worker process %s exited with code %s",
                                child.process.pid, code)
            elif code != 0:
                self.failed += 1
                if not self.stopping:
                    log.error("worker process %s exited with code %s; stopping the others",
                              child.process.pid, code)
                    self.stop()
            elif not self.stopping:
                log.warning("worker process %s exited on its own", child.process.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Ask every child to stop (SIGTERM: cleanly; SIGKILL on a second request)."""
        self.stopping = True
        self.status.reason = "stopping"
        for child in self._children:
            if child.process.is_alive() and child.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, sig)

    def exit_code(self) -> int:
        """0 when every child stopped cleanly, 1 if one exited with an error."""
        self.reap()
        return 1 if self.failed else 0

    def _grow(self, count: int) -> None:
        for _ in range(count):
            index = self._next_index
            self._next_index += 1
            process = self._context.Process(target=self.target, args=(index,),
                                            name=f"{self.name}-{index}")
            process.start()
            self._children.append(_Child(index, process))
            self.status.started += 1
            log.info("started worker process %d (pid %s)", index, process.pid)

    def _retire_newest(self) -> None:
        candidates = [c for c in self._children if not c.retiring and c.process.is_alive()]
        if not candidates:
            return
        child = max(candidates, key=lambda c: c.index)
        child.retiring = True
        if child.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.process.pid, signal.SIGTERM)

    def _refresh(self) -> None:
        self.status.processes = len(self.running)
        self.status.retiring = sum(1 for c in self._children
                                   if c.retiring and c.process.is_alive())
        self.status.pids = [p.pid for p in self.running if p.pid is not None]

    def describe(self) -> dict[str, Any]:
        """The published form of the status, with the bounds."""
        s = self.status
        return {
            "name": self.name, "processes": s.processes, "retiring": s.retiring,
            "wanted": s.wanted, "queue_depth": s.queue_depth, "reason": s.reason,
            "min_processes": self.config.min_processes,
            "max_processes": self.config.max_processes,
            "jobs_per_process": self.config.jobs_per_process,
            "started": s.started, "retired": s.retired, "pids": s.pids,
            "pid": os.getpid(),
        }
