"""Per-worker statistics: a typed record, also published to Redis by the heartbeat."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WorkerStats:
    worker_name: str
    jobs_processed: int
    jobs_succeeded: int
    jobs_failed: int
    average_process_time: float  # seconds
    last_job_time: float | None  # epoch seconds when the last job finished
    uptime: float  # seconds since start, 0 when not running
    is_running: bool
    in_flight: int = 0
    concurrency: int = 0
    queue: str = ""
    pid: int = 0
    host: str = ""

    @property
    def success_rate(self) -> float:
        """Succeeded / processed; 0.0 before the first job (never a division error)."""
        return self.jobs_succeeded / self.jobs_processed if self.jobs_processed else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["success_rate"] = self.success_rate
        return data


class StatsRecorder:
    """Mutable counters behind :class:`WorkerStats`."""

    def __init__(self) -> None:
        self.processed = 0
        self.succeeded = 0
        self.failed = 0
        self.busy_time = 0.0
        self.last_job_time: float | None = None
        self.started: float | None = None

    def record(self, *, ok: bool, duration: float) -> None:
        self.processed += 1
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
