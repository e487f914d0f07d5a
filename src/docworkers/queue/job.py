"""The job record, as the risk-analyzer backend uses it, and its Redis hash encoding."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

JSONValue = Any  # a value that json.dumps accepts


class JobStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRYING = "retrying"
    DEAD = "dead"


TERMINAL_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD}
)
WAITING_STATUSES = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RETRYING})
REQUEUEABLE_STATUSES = frozenset(
    {JobStatus.FAILED, JobStatus.DEAD, JobStatus.CANCELLED, JobStatus.PENDING}
)

MIN_PRIORITY = -1000
MAX_PRIORITY = 1000


@dataclass(frozen=True, slots=True)
class JobError:
    """Why an attempt failed: a stable code, a human message, and the traceback if any."""

    code: str
    message: str
    traceback: str | None = None
    stage: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {"code": self.code, "message": self.message, "traceback": self.traceback,
             "stage": self.stage}
        )

    @classmethod
    def from_json(cls, raw: str) -> JobError:
        data = json.loads(raw)
        return cls(data["code"], data["message"], data.get("traceback"), data.get("stage"))


def _time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)


@dataclass(slots=True)
class Job:
    """A snapshot of one job. Change jobs through the repository, never by editing this."""

    id: str
    type: str
    status: JobStatus
    payload: dict[str, JSONValue]
    priority: int = 0
    progress: int = 0
    message: str = ""
    result: JSONValue = None
    error: JobError | None = None
    retry_count: int = 0
    max_retries: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    run_at: datetime | None = None
    worker_id: str | None = None
    user_id: str | None = None
    tags: list[str] = field(default_factory=list)
    queue: str = "default"
    token: int = 0  # fencing token of the current reservation
    cancel_requested: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def processing_time(self) -> float | None:
        """Seconds between start and completion of the last attempt, if both are known."""
        if self.started_at and self.completed_at:
            return (self.completed_at - self.started_at).total_seconds()
        return None

    @classmethod
    def from_hash(cls, data: dict[str, str], queue: str = "default") -> Job:
        """Build a job from its Redis hash (all values are strings)."""
        max_retries = data.get("max_retries", "")
        return cls(
            id=data["id"],
            type=data["type"],
            status=JobStatus(data["status"]),
            payload=json.loads(data.get("payload") or "{}"),
            priority=int(data.get("priority", 0)),
            progress=int(data.get("progress", 0)),
            message=data.get("message", ""),
            result=json.loads(data["result"]) if data.get("result") else None,
            error=JobError.from_json(data["error"]) if data.get("error") else None,
            retry_count=int(data.get("retry_count", 0)),
            max_retries=int(max_retries) if max_retries not in ("", None) else None,
            created_at=_time(data.get("created_at")),
            started_at=_time(data.get("started_at")),
            completed_at=_time(data.get("completed_at")),
            updated_at=_time(data.get("updated_at")),
            run_at=_time(data.get("run_at")),
            worker_id=data.get("worker_id") or None,
            user_id=data.get("user_id") or None,
            tags=json.loads(data.get("tags") or "[]"),
            queue=queue,
            token=int(data.get("token", 0)),
            cancel_requested=data.get("cancel_requested") == "1",
        )

    @classmethod
    def from_flat(cls, flat: list[str], queue: str = "default") -> Job:
        """Build a job from an HGETALL reply returned as a flat list by a script."""
        it = iter(flat)
        return cls.from_hash(dict(zip(it, it, strict=True)), queue)

    def to_dict(self) -> dict[str, JSONValue]:
        """A JSON-ready view, used by the API and the command line."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "type": self.type,
            "status": self.status.value,
            "priority": self.priority,
            "progress": self.progress,
            "message": self.message,
            "payload": self.payload,
            "result": self.result,
            "error": None
            if self.error is None
            else {"code": self.error.code, "message": self.error.message,
                  "stage": self.error.stage},
            "retry_count": self.retry_count,
            "max_retries": self.max_retries,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "updated_at": iso(self.updated_at),
            "run_at": iso(self.run_at),
            "worker_id": self.worker_id,
            "user_id": self.user_id,
            "tags": self.tags,
            "queue": self.queue,
        }
