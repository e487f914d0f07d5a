"""Queue-wide statistics, read from Redis in one pipelined round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts by state now, plus totals since the queue was created."""

    queue: str
    by_status: dict[str, int]
    completed_by_type: dict[str, int]
    failed_by_type: dict[str, int]
    total_completed: int
    total_failed: int
    total_dead: int
    total_retried: int
    total_lease_expired: int
    average_processing_time: float  # seconds per completed job
    active_workers: int
    workers: list[dict[str, Any]] = field(default_factory=list)
    supervisors: list[dict[str, Any]] = field(default_factory=list)  # autoscaling process pools
    paused: list[str] = field(default_factory=list)  # the paused queues among these
    delayed: int = 0  # of the queued jobs, those waiting for a later time (not retries)

    @property
    def success_rate(self) -> float:
        """Completed / (completed + failed + dead); 0.0 before anything finished."""
        finished = self.total_completed + self.total_failed + self.total_dead
        return self.total_completed / finished if finished else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "by_status": self.by_status,
            "completed_by_type": self.completed_by_type,
            "failed_by_type": self.failed_by_type,
            "total_completed": self.total_completed,
            "total_failed": self.total_failed,
            "total_dead": self.total_dead,
            "total_retried": self.total_retried,
            "total_lease_expired": self.total_lease_expired,
            "average_processing_time": self.average_processing_time,
            "success_rate": self.success_rate,
            "active_workers": self.active_workers,
            "workers": self.workers,
            "supervisors": self.supervisors,
            "paused": self.paused,
            "delayed": self.delayed,
        }
