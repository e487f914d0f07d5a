"""Filters for listing jobs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from docworkers.errors import ConfigurationError
from docworkers.queue.job import Job, JobStatus


@dataclass(frozen=True, kw_only=True, slots=True)
class JobFilter:
    """Which jobs to list. Empty sets match everything; ``tags`` must all be present.

    The queue knows nothing of payloads, so it matches them generically: ``payload`` holds
    (field, value) pairs a top-level payload field must equal (a string field as is, any other
    as its JSON), and ``text`` is a case-insensitive substring of the job id or of any
    top-level string field of the payload (a filename, for instance).
    """

    types: frozenset[str] = frozenset()
    statuses: frozenset[JobStatus] = frozenset()
    tags: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    payload: tuple[tuple[str, str], ...] = ()
    text: str | None = None
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
           tags: Iterable[str] = (), queues: Iterable[str] = (),
           payload: Mapping[str, str] | None = None, text: str | None = None,
           **rest: object) -> JobFilter:
        """Build a filter from plain values (strings for statuses), validating them."""
        try:
            parsed = frozenset(JobStatus(s) for s in statuses)
        except ValueError as exc:
            valid = ", ".join(s.value for s in JobStatus)
            raise ConfigurationError("status", f"{exc}; valid statuses: {valid}") from exc
        return cls(types=frozenset(types), statuses=parsed, tags=frozenset(tags),
                   queues=frozenset(queues), payload=tuple(sorted((payload or {}).items())),
                   text=text or None, **rest)  # type: ignore[arg-type]

    @property
    def reads_jobs(self) -> bool:
        """Whether matching needs each job's hash (anything beyond one state collection)."""
        return bool(self.types or len(self.statuses) > 1 or self.tags or self.payload
                    or self.text or self.user_id or self.created_after or self.created_before)

    def matches(self, job: Job) -> bool:
        if self.types and job.type not in self.types:
            return False
        if self.queues and job.queue not in self.queues:
            return False
        if self.payload and not all(_as_text(job.payload.get(name)) == value
                                    for name, value in self.payload):
            return False
        if self.text and not _contains(job, self.text.casefold()):
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


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _contains(job: Job, needle: str) -> bool:
    if needle in job.id.casefold():
        return True
    return any(isinstance(v, str) and needle in v.casefold() for v in job.payload.values())


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing, and how many jobs match in all (None: too many to count
    cheaply; the listing reads at most a few thousand jobs past the page to count them)."""

    jobs: list[Job]
    total: int | None
