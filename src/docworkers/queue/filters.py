"""Filters for listing jobs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from docworkers.errors import ConfigurationError
from docworkers.queue.job import Job, JobStatus


@dataclass(frozen=True, kw_only=True, slots=True)
class JobFilter:
    """Which jobs to list. Empty sets match everything; ``tags`` must all be present."""

    types: frozenset[str] = frozenset()
    statuses: frozenset[JobStatus] = frozenset()
    tags: frozenset[str] = frozenset()
    user_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.limit > 10_000:
            raise ConfigurationError("limit", "must be between 1 and 10000")
        if self.offset < 0:
            raise ConfigurationError("offset", "must not be negative")

    @classmethod
    def of(cls, *, types: Iterable[str] = (), statuses: Iterable[str | JobStatus] = (),
           tags: Iterable[str] = (), **rest: object) -> JobFilter:
        """Build a filter from plain values (strings for statuses), validating them."""
        try:
            parsed = frozenset(JobStatus(s) for s in statuses)
        except ValueError as exc:
            valid = ", ".join(s.value for s in JobStatus)
            raise ConfigurationError("status", f"{exc}; valid statuses: {valid}") from exc
        return cls(types=frozenset(types), statuses=parsed, tags=frozenset(tags),
                   **rest)  # type: ignore[arg-type]

    def matches(self, job: Job) -> bool:
        if self.types and job.type not in self.types:
            return False
        if self.statuses and job.status not in self.statuses:
            return False
        if self.tags and not self.tags.issubset(job.tags):
            return False
        if self.user_id is not None and job.user_id != self.user_id:
            return False
        if self.created_after and job.created_at and job.created_at < self.created_after:
            return False
        return not (
            self.created_before and job.created_at and job.created_at > self.created_before
        )
