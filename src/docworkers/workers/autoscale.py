"""Dynamic concurrency: how many jobs a worker should run at once, decided from what it sees.

A fixed concurrency is either too low (a backlog waits while the machine idles on I/O) or too
high (CPU-bound jobs such as embedding only get slower each, and memory grows with every job in
flight). With ``WorkerConfig(min_concurrency=...)`` a worker instead moves its limit between
``min_concurrency`` and ``concurrency`` every ``scale_interval`` seconds, from four signals:

* **memory**: resident memory above ``memory_limit_mb`` halves the limit (never below the
  minimum) — the one multiplicative step, because running out of memory kills every job;
* **latency**: once the mean duration of recent jobs exceeds ``latency_tolerance`` times the
  best mean seen, more concurrency only slows each job down (a saturated CPU or a service at
  its limit): shrink by one;
* **backlog**: ready jobs wait while every slot is busy: double the limit (at most by the
  backlog, never past the maximum), like TCP's slow start, so a flood is followed in a few
  rounds;
* **idle**: no job waits and slots are free: shrink by one, so the worker holds less memory
  and leaves jobs to busier peers.

:class:`ConcurrencyController` is pure (signals in, decision out), so the policy is tested
without a clock; :class:`LatencyTracker` keeps the latency signal. BaseWorker runs the loop.
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass

__all__ = [
    "ConcurrencyController",
    "LatencyTracker",
    "ScalingDecision",
    "ScalingSignals",
    "grow_step",
    "resident_memory_mb",
]


@dataclass(frozen=True, slots=True)
class ScalingSignals:
    """What a worker knows when it decides: its limit, load, queue, latency and memory."""

    limit: int
    in_flight: int
    queue_depth: int  # ready jobs waiting in the worker's queue
    latency: float | None = None  # recent mean job duration (s), None before enough jobs
    best_latency: float | None = None  # the lowest recent mean seen since start
    rss_mb: float | None = None


@dataclass(frozen=True, slots=True)
class ScalingDecision:
    limit: int
    reason: str  # memory | latency | backlog | idle | steady

    def changed(self, before: int) -> bool:
        return self.limit != before


class ConcurrencyController:
    """The scaling policy (see the module docstring). Bounds are validated by WorkerConfig."""

    def __init__(self, minimum: int, maximum: int, *, latency_tolerance: float = 2.0,
                 memory_limit_mb: float | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.latency_tolerance = latency_tolerance
        self.memory_limit_mb = memory_limit_mb

    def decide(self, s: ScalingSignals) -> ScalingDecision:
        limit = min(max(s.limit, self.minimum), self.maximum)
        if self.memory_limit_mb is not None and s.rss_mb is not None \
                and s.rss_mb > self.memory_limit_mb:
            return ScalingDecision(max(self.minimum, limit // 2), "memory")
        slow = (s.latency is not None and s.best_latency is not None
                and s.latency > self.latency_tolerance * s.best_latency)
        if slow and limit > self.minimum:
            return ScalingDecision(limit - 1, "latency")
        if s.queue_depth > 0 and s.in_flight >= limit and not slow:
            step = min(grow_step(limit), s.queue_depth)
            return ScalingDecision(min(self.maximum, limit + step),
                                   "backlog" if limit < self.maximum else "steady")
        if s.queue_depth == 0 and s.in_flight < limit and limit > self.minimum:
            return ScalingDecision(limit - 1, "idle")
        return ScalingDecision(limit, "steady")


class LatencyTracker:
    """Exponentially weighted mean of job durations, and the lowest such mean seen.

    The best mean is taken only after ``warmup`` jobs, so one quick first job does not set an
    unreachable bar; jobs of very different sizes make the signal noisy, which is why the
    tolerance is a factor (2 by default), not a percentage.
    """

    def __init__(self, alpha: float = 0.2, warmup: int = 5) -> None:
        self.alpha = alpha
        self.warmup = warmup
        self.samples = 0
        self.mean: float | None = None
        self.best: float | None = None

    def record(self, duration: float) -> None:
        self.samples += 1
        self.mean = duration if self.mean is None else \
            self.alpha * duration + (1 - self.alpha) * self.mean
        if self.samples >= self.warmup and (self.best is None or self.mean < self.best):
            self.best = self.mean

    @property
    def latency(self) -> float | None:
        return self.mean if self.samples >= self.warmup else None


def resident_memory_mb() -> float:
    """This process's resident set size now (Linux: /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def grow_step(limit: int) -> int:
    """How many slots a backlog adds at once: as many as there are (doubling)."""
    return max(1, limit)
