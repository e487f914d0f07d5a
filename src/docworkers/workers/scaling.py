"""A worker's concurrency limit: fixed, or moved by :mod:`docworkers.workers.autoscale`.

With ``min_concurrency`` set, a loop runs every ``scale_interval``: one ZCARD for the backlog,
then the :class:`~docworkers.workers.autoscale.ConcurrencyController` decides from the backlog,
the slots in use, the recent job latency and resident memory. Without the depth (Redis away)
the limit stays; the fetcher reports outages. Every worker keeps the latency signal, which its
stats publish.
"""

from __future__ import annotations

import logging

from docworkers.queue.protocol import WorkerRepository
from docworkers.workers.autoscale import (
    ConcurrencyController,
    LatencyTracker,
    ScalingSignals,
    resident_memory_mb,
)
from docworkers.workers.config import WorkerConfig
from docworkers.workers.loops import Log, Periodic
from docworkers.workers.slots import Slots


class Scaling:
    """The limit of ``slots`` and, when autoscaling, the loop that moves it."""

    def __init__(self, config: WorkerConfig, repo: WorkerRepository, slots: Slots, *,
                 name: str, log: Log) -> None:
        self.config = config
        self.repo = repo
        self.log = log
        # Recent job durations; the worker records completions only (failures are often fast,
        # a refused call: they would set a false best).
        self.latency = LatencyTracker()
        self.reason = "autoscaling" if config.autoscaling else "fixed"  # or the last decision
        self.rss_mb = 0.0
        self.changes = 0
        self._slots = slots
        self._controller = ConcurrencyController(
            config.min_concurrency or config.concurrency, config.concurrency,
            latency_tolerance=config.latency_tolerance, memory_limit_mb=config.memory_limit_mb,
        )
        self._loop = Periodic(
            f"{name}-autoscale", config.scale_interval, self._step,
            lambda exc: log.debug("autoscaling skipped, no queue depth: %s", exc),
        ) if config.autoscaling else None

    async def _step(self) -> None:
        self.rescale(await self.repo.queue_depth())

    def rescale(self, queue_depth: int) -> int:
        """Apply one scaling decision for ``queue_depth`` waiting jobs; returns the new limit."""
        self.rss_mb = resident_memory_mb()
        slots, before = self._slots, self._slots.limit
        decision = self._controller.decide(ScalingSignals(
            limit=before, in_flight=len(slots.running), queue_depth=queue_depth,
            latency=self.latency.latency, best_latency=self.latency.best, rss_mb=self.rss_mb,
        ))
        self.reason = decision.reason
        if decision.changed(before):
            slots.set_limit(decision.limit)
            self.changes += 1
            # Growth and memory pressure are news; single steps down would flood the log.
            level = logging.INFO if decision.reason in ("backlog", "memory") else logging.DEBUG
            self.log.log(level, "concurrency %d -> %d (%s; %d waiting, %d running, latency %s, "
                         "%.0f MiB)", before, decision.limit, decision.reason, queue_depth,
                         len(slots.running),
                         "-" if self.latency.latency is None
                         else f"{self.latency.latency:.3f}s", self.rss_mb)
        return slots.limit

    def start(self) -> None:
        if self._loop is not None:
            self._loop.start()

    def close(self) -> None:
        """Make no more decisions (the worker is stopping)."""
        if self._loop is not None:
            self._loop.close()

    async def stop(self, timeout: float) -> None:
        if self._loop is not None:
            await self._loop.stop(timeout)
