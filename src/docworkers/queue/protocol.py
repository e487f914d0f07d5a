"""The job repository contract (RedisJobRepository implements it) and the values it exchanges.

Two sides use a queue. A worker (:class:`WorkerRepository`) reserves jobs, renews their leases
and reports how each attempt ended; a front door or an operator (:class:`AdminRepository`)
enqueues, reads and manages jobs. :class:`JobRepository` is both. An attempt that did not
complete ends in one typed :class:`Failure`, whose kind says what the queue does with the job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from docworkers.queue.filters import JobFilter
from docworkers.queue.job import Job, JobErrorInfo, JobStatus
from docworkers.queue.spec import JobSpec
from docworkers.queue.stats import QueueStats

__all__ = [
    "AdminRepository",
    "Failure",
    "FailureKind",
    "JobRepository",
    "Reservation",
    "Waiter",
    "WorkerRepository",
]


@dataclass(frozen=True, slots=True)
class Reservation:
    """Jobs handed to one worker, and when the next delayed job falls due (epoch s or None)."""

    jobs: list[Job]
    next_due: float | None


class FailureKind(StrEnum):
    """What the queue does with a job whose attempt did not complete (fail.lua's outcome)."""

    RETRY = "retry"  # counts an attempt: retried after ``delay`` while retries are left, else dead
    FINAL = "fail"  # a permanent error: failed at once, never retried
    DEFER = "defer"  # never really tried (a service refused the call): again after ``delay``,
    #                  without using an attempt
    CANCEL = "cancel"  # stopped because someone asked to cancel it


@dataclass(frozen=True, slots=True)
class Failure:
    """How one attempt failed: what to do with the job (``kind``), when to run it again
    (``delay`` seconds, for RETRY and DEFER) and the error stored on the job."""

    kind: FailureKind
    error: JobErrorInfo
    delay: float = 0.0

    @classmethod
    def retry(cls, error: JobErrorInfo, delay: float = 0.0) -> Failure:
        return cls(FailureKind.RETRY, error, delay)

    @classmethod
    def final(cls, error: JobErrorInfo) -> Failure:
        return cls(FailureKind.FINAL, error)

    @classmethod
    def defer(cls, error: JobErrorInfo, delay: float) -> Failure:
        return cls(FailureKind.DEFER, error, delay)

    @classmethod
    def cancelled(cls, error: JobErrorInfo | None = None) -> Failure:
        return cls(FailureKind.CANCEL, error or JobErrorInfo("cancelled", "cancelled on request"))


class Waiter(Protocol):
    async def connect(self) -> None: ...
    async def wait(self, timeout: float) -> bool: ...
    async def wait_and_reserve(self, timeout: float, worker_id: str, max_jobs: int,
                               lease: float, default_max_retries: int | None = None, *,
                               min_priority: int | None = None
                               ) -> Reservation: ...
    async def interrupt(self) -> None: ...
    async def close(self) -> None: ...


class WorkerRepository(Protocol):
    """What a worker and its components (fetcher, acker, heartbeat, autoscaling) call."""

    @property
    def queue(self) -> str: ...

    async def check_server(self) -> list[str]:
        """Ping (raising RepositoryConnectionError naming the server) and return warnings
        about the server's configuration (e.g. an eviction policy that could drop jobs)."""
        ...

    async def reserve(self, worker_id: str, max_jobs: int, lease: float,
                      default_max_retries: int | None = None, *,
                      min_priority: int | None = None) -> Reservation: ...
    async def complete_and_reserve(
        self, done: Sequence[tuple[str, int, Any]], worker_id: str, max_jobs: int, lease: float,
        default_max_retries: int | None = None, *, min_priority: int | None = None,
    ) -> tuple[list[bool], Reservation]: ...
    def waiter(self) -> Waiter: ...
    async def complete(self, job_id: str, token: int, result: Any = None) -> None: ...
    async def complete_many(self, done: Sequence[tuple[str, int, Any]]) -> list[bool]: ...
    async def fail(self, job_id: str, token: int, failure: Failure, *,
                   default_max_retries: int | None = None) -> JobStatus: ...
    async def update_progress(self, job_id: str, token: int, progress: int, message: str,
                              lease: float) -> bool: ...
    async def owns(self, job_id: str, token: int) -> bool: ...
    async def heartbeat(self, worker_name: str, stats: Mapping[str, Any], ttl: float,
                        lease: float, jobs: Sequence[tuple[str, int]]
                        ) -> tuple[list[str], list[str]]: ...
    async def release(self, jobs: Sequence[tuple[str, int]]) -> int: ...
    async def queue_depth(self) -> int: ...


class AdminRepository(Protocol):
    """What front doors and operators call: enqueue, read, list, cancel, requeue, clean up."""

    @property
    def queue(self) -> str: ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...
    async def enqueue(self, job_type: str, payload: Mapping[str, Any] | None = None,
                      **options: Any) -> str: ...
    async def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]: ...
    async def create_job(self, job_type: str, payload: Mapping[str, Any] | None = None,
                         **options: Any) -> str: ...
    async def get_job(self, job_id: str) -> Job: ...
    async def find_job(self, job_id: str) -> Job | None: ...
    async def delete_job(self, job_id: str) -> bool: ...
    async def list_jobs(self, job_filter: JobFilter | None = None) -> list[Job]: ...
    async def active_jobs(self) -> list[Job]: ...
    async def wait_for_work(self, timeout: float) -> bool: ...
    async def update_status(self, job_id: str, status: JobStatus) -> None: ...
    async def cancel(self, job_id: str) -> str: ...
    async def requeue(self, job_id: str) -> None: ...
    async def dead_letters(self, limit: int = 100, offset: int = 0) -> list[Job]: ...
    async def purge_dead_letters(self) -> int: ...
    async def cleanup(self, older_than: float, *, include_dead: bool = False) -> int: ...
    async def stats(self) -> QueueStats: ...
    async def queue_depth(self) -> int: ...


class JobRepository(WorkerRepository, AdminRepository, Protocol):
    """Both sides of one queue: what :class:`~docworkers.queue.RedisJobRepository` offers."""
