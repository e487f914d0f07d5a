"""The job record and its Redis hash encoding."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
#: Retries after the first attempt of a job that does not set its own ``max_retries``: the
#: default of both the worker's ``max_retries`` and the repository's ``default_max_retries``.
DEFAULT_MAX_RETRIES = 3


@dataclass(frozen=True, slots=True)
class JobErrorInfo:
    """Why an attempt failed, as the job stores it: a stable code, a human message, the
    traceback if any and the stage it failed in. A record, not an exception: the exceptions
    are :mod:`docworkers.errors` (``JobError`` and the rest)."""

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
    def from_json(cls, raw: str) -> JobErrorInfo:
        data = json.loads(raw)
        return cls(data["code"], data["message"], data.get("traceback"), data.get("stage"))


# The C scanner json.loads runs, minus its Python wrapper (set by JSONDecoder.__init__;
# typeshed does not declare it).
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json(raw: str) -> Any:
    """``json.loads`` for the compact JSON docworkers writes, minus the wrapper's overhead.

    The scanner reads one value from the start; anything else (leading or trailing space,
    invalid text) goes through ``json.loads``, which accepts or rejects it as usual.
    """
    try:
        value, end = _scan(raw, 0)
    except StopIteration:
        return json.loads(raw)
    return value if end == len(raw) else json.loads(raw)


def iso_time(value: datetime | float | None) -> str | None:
    """The one way docworkers writes a time in JSON: ISO 8601 in UTC (``...+00:00``), from a
    datetime or from epoch seconds; None (and the 0 of "never") stay None."""
    if not value:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, tz=UTC)
    return moment.astimezone(UTC).isoformat()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def ms_time(ms: int) -> datetime:
    """The UTC datetime of ``ms``, epoch milliseconds as the scripts write them. Exact integer
    arithmetic, and on an idle worker's pickup about half the time of
    ``datetime.fromtimestamp(ms / 1000, UTC)`` (which goes through a float and the C library)."""
    return _EPOCH + _MILLISECOND * ms


def _time(raw: str | int | None) -> datetime | None:
    if not raw:
        return None
    return ms_time(int(raw))


# The fields of a job hash, in the order Job.from_fields reads them.
JOB_FIELDS = (
    "id", "type", "status", "payload", "priority", "progress", "message", "result", "error",
    "retry_count", "max_retries", "created_at", "started_at", "completed_at", "updated_at",
    "run_at", "worker_id", "user_id", "tags", "token", "cancel_requested",
)
# The fields reserve.lua returns for each job it reserves, in this order (Job.reserved); the
# others it sets to values the worker knows.
RESERVE_FIELDS = (
    "id", "type", "payload", "priority", "result", "error", "retry_count", "max_retries",
    "created_at", "run_at", "user_id", "tags", "token", "cancel_requested",
)
_STATUSES = {s.value: s for s in JobStatus}


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
    error: JobErrorInfo | None = None
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
        return cls.from_fields([data.get(name) for name in JOB_FIELDS], queue)

    @classmethod
    def from_fields(cls, values: Sequence[Any], queue: str = "default") -> Job:
        """Build a job from the values of :data:`JOB_FIELDS`, in that order (None: absent).

        Values are strings, or integers where a script wrote a number. The worker builds
        every job it reserves here, so common values take a fast path.
        """
        (job_id, job_type, status, payload, priority, progress, message, result, error,
         retry_count, max_retries, created_at, started_at, completed_at, updated_at, run_at,
         worker_id, user_id, tags, token, cancel_requested) = values
        if job_id is None or job_type is None or status is None:
            missing = [n for n, v in zip(JOB_FIELDS, values[:3], strict=False) if v is None]
            raise KeyError(f"job hash without {', '.join(missing)}")
        started = _time(started_at)
        return cls(
            id=job_id,
            type=job_type,
            status=_STATUSES.get(status) or JobStatus(status),
            payload=_json(payload) if payload else {},
            priority=int(priority or 0),
            progress=int(progress or 0),
            message=message or "",
            result=_json(result) if result else None,
            error=JobErrorInfo.from_json(error) if error else None,
            retry_count=int(retry_count or 0),
            max_retries=int(max_retries) if max_retries not in ("", None) else None,
            created_at=_time(created_at),
            started_at=started,
            completed_at=_time(completed_at),
            # reserve sets both to the same instant: share the (immutable) datetime
            updated_at=started if updated_at == started_at else _time(updated_at),
            run_at=_time(run_at),
            worker_id=worker_id or None,
            user_id=user_id or None,
            tags=_json(tags) if tags and tags != "[]" else [],
            queue=queue,
            token=int(token or 0),
            cancel_requested=cancel_requested == "1",
        )

    @classmethod
    def reserved(cls, values: Sequence[Any], *, now_ms: int, worker_id: str,
                 queue: str = "default", now: datetime | None = None) -> Job:
        """A job reserve.lua just leased to ``worker_id`` at ``now_ms``, from the values of
        :data:`RESERVE_FIELDS` it returned; the fields it set are filled in as it set them
        (as :meth:`from_fields` would read them back). ``now``, ``now_ms`` as a datetime, may
        be shared by the jobs of one reservation. The worker builds every job it starts here:
        the fields are given by position, the known ones as constants."""
        (job_id, job_type, payload, priority, result, error, retry_count, max_retries,
         created_at, run_at, user_id, tags, token, cancel_requested) = values
        if job_id is None or job_type is None:
            raise KeyError("reserved job without id or type")
        started = now or _time(now_ms)
        return cls(
            job_id, job_type, JobStatus.PROCESSING, _json(payload) if payload else {},
            int(priority or 0), 0, "", _json(result) if result else None,
            JobErrorInfo.from_json(error) if error else None, int(retry_count or 0),
            int(max_retries) if max_retries not in ("", None) else None,
            _time(created_at), started, None, started, _time(run_at), worker_id,
            user_id or None, _json(tags) if tags and tags != "[]" else [], queue,
            int(token or 0), cancel_requested == "1",
        )

    def to_dict(self) -> dict[str, JSONValue]:
        """A JSON-ready view, used by the API and the command line."""
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
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "completed_at": iso_time(self.completed_at),
            "updated_at": iso_time(self.updated_at),
            "run_at": iso_time(self.run_at),
            "worker_id": self.worker_id,
            "user_id": self.user_id,
            "tags": self.tags,
            "queue": self.queue,
        }
