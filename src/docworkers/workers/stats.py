"""Per-worker statistics: a typed record, also published to Redis by the heartbeat (every
second, and soon after a job finishes: see :mod:`~docworkers.workers.heartbeat`)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from docworkers.queue.job import iso_time

CURRENT_JOBS_SHOWN = 20  # running jobs listed in the published stats (a busy worker has more)


@dataclass(frozen=True, slots=True)
class WorkerStats:
    worker_name: str
    jobs_processed: int
    jobs_succeeded: int
    jobs_failed: int  # failed attempts, including those whose job runs again (see outcomes)
    average_process_time: float  # seconds
    last_job_time: float | None  # epoch seconds when the last job finished
    uptime: float  # seconds since start, 0 when not running
    is_running: bool
    in_flight: int = 0
    concurrency: int = 0
    queue: str = ""
    pid: int = 0
    host: str = ""
    # Dynamic concurrency: ``concurrency`` is the limit now, between these two bounds.
    min_concurrency: int = 0
    max_concurrency: int = 0
    scaling: str = ""  # fixed, or the last decision: memory, latency, backlog, idle, steady
    concurrency_changes: int = 0
    latency: float = 0.0  # recent mean job duration (s)
    rss_mb: float = 0.0  # resident memory at the last scaling decision
    # Of the worker's process: circuit breaker states, and calls refused by a breaker or limit
    # (keys "breaker:<name>", "rate:<name>", "concurrency:<name>"; see workers/service_guard).
    breakers: dict[str, str] = field(default_factory=dict)
    limited: dict[str, int] = field(default_factory=dict)
    started_at: float | None = None  # epoch seconds when the worker started; None if stopped
    # The status each finished attempt left its job in (completed, retrying, failed, dead,
    # cancelled): the words of the queue's counts, so a worker's "failed" means what the
    # queue's does (failed for good), and a failed attempt that will run again is "retrying".
    outcomes: dict[str, int] = field(default_factory=dict)
    # The jobs running now (at most CURRENT_JOBS_SHOWN): id, type and when they started.
    current_jobs: list[dict[str, Any]] = field(default_factory=list)
    updated_at: float = 0.0  # epoch seconds when these numbers were taken (0: unknown)

    @property
    def success_rate(self) -> float:
        """Succeeded / processed; 0.0 before the first job (never a division error)."""
        return self.jobs_succeeded / self.jobs_processed if self.jobs_processed else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The published (and API) view: times in ISO 8601 UTC, like jobs' and documents'."""
        data = asdict(self)
        data["success_rate"] = self.success_rate
        for name in ("last_job_time", "started_at", "updated_at"):
            data[name] = iso_time(data[name])
        return data


class StatsRecorder:
    """Mutable counters behind :class:`WorkerStats`."""

    def __init__(self) -> None:
        self.processed = 0
        self.succeeded = 0
        self.failed = 0
        self.busy_time = 0.0
        self.outcomes: dict[str, int] = {}
        self.last_job_time: float | None = None
        self.started: float | None = None  # time.monotonic() at start: uptime never jumps
        self.started_at: float | None = None  # time.time() at start, for people

    def start(self) -> None:
        self.started = time.monotonic()
        self.started_at = time.time()

    def record(self, *, ok: bool, duration: float, outcome: str | None = None) -> None:
        """One finished attempt; ``outcome``: the status it left the job in (default
        completed when ``ok``)."""
        self.processed += 1
        status = outcome or ("completed" if ok else "failed")
        self.outcomes[status] = self.outcomes.get(status, 0) + 1
        if ok:
            self.succeeded += 1
        else:
            self.failed += 1
        self.busy_time += duration
        self.last_job_time = time.time()

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started if self.started is not None else 0.0

    @property
    def average(self) -> float:
        return self.busy_time / self.processed if self.processed else 0.0
