"""Which queue each document job type runs on, and reading jobs across those queues.

A worker reserves whatever job is next on its queue and fails a type it does not handle, so
each job type has a queue of its own, derived from a *base* queue (``DOCWORKERS_QUEUE``):
``document_upload`` keeps the base queue itself (so uploads enqueued before the other types
existed still run), every other type goes to ``<base>.<type>``, e.g. ``default.bulk_import``.
Everything that enqueues, works on or looks up these jobs goes through :func:`queue_for`.

:class:`RoutedQueues` holds the repositories of one base queue and answers the questions a
front door asks without knowing the type: where is job X, which jobs match this filter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from docworkers.errors import ConfigurationError, InvalidPayloadError, JobNotFoundError
from docworkers.ingest.jobs.bulk_import import BULK_IMPORT_JOB_TYPE, BulkImportPayload
from docworkers.ingest.jobs.collection_delete import (
    COLLECTION_DELETE_JOB_TYPE,
    CollectionDeletePayload,
)
from docworkers.ingest.jobs.common import JobPayload
from docworkers.ingest.jobs.document_delete import DOCUMENT_DELETE_JOB_TYPE, DocumentDeletePayload
from docworkers.ingest.jobs.metadata_extract import (
    METADATA_EXTRACT_JOB_TYPE,
    MetadataExtractPayload,
)
from docworkers.ingest.jobs.vector_reindex import VECTOR_REINDEX_JOB_TYPE, VectorReindexPayload
from docworkers.ingest.payload import UPLOAD_JOB_TYPE, UploadJobPayload
from docworkers.queue.filters import JobFilter
from docworkers.queue.job import Job
from docworkers.queue.keys import validate_queue_name
from docworkers.queue.repository import RedisJobRepository
from docworkers.queue.stats import QueueStats

__all__ = [
    "JOB_KINDS",
    "JOB_TYPES",
    "JobKind",
    "RoutedQueues",
    "combine_stats",
    "job_kind",
    "payload_problems",
    "queue_for",
    "validate_payload",
]

SEPARATOR = "."
MAX_MERGED = 10_000  # deepest a listing that merges several queues reaches (JobFilter's cap)


@dataclass(frozen=True, slots=True)
class JobKind:
    """What the front doors need to know about one job type."""

    name: str
    payload: type[BaseModel]  # validates the payload; unknown fields are errors
    needs_model: bool  # the worker loads the embedding model / parser (DocumentServices)
    needs_registry: bool  # reads the document registry: pointless on a private, empty Redis
    names_server_paths: bool  # the payload names files on the workers' disks
    concurrency: int | None  # default jobs at once per worker; None: DOCWORKERS_CONCURRENCY


# Uploads are the traffic; the others are rare, and reindex / extraction share the model with
# the uploads, so one at a time per worker process unless asked otherwise.
JOB_KINDS: dict[str, JobKind] = {kind.name: kind for kind in (
    JobKind(UPLOAD_JOB_TYPE, UploadJobPayload, needs_model=True, needs_registry=False,
            names_server_paths=True, concurrency=None),
    JobKind(DOCUMENT_DELETE_JOB_TYPE, DocumentDeletePayload, needs_model=False,
            needs_registry=True, names_server_paths=False, concurrency=1),
    JobKind(COLLECTION_DELETE_JOB_TYPE, CollectionDeletePayload, needs_model=False,
            needs_registry=False, names_server_paths=False, concurrency=1),
    JobKind(METADATA_EXTRACT_JOB_TYPE, MetadataExtractPayload, needs_model=True,
            needs_registry=True, names_server_paths=False, concurrency=1),
    JobKind(VECTOR_REINDEX_JOB_TYPE, VectorReindexPayload, needs_model=True,
            needs_registry=True, names_server_paths=False, concurrency=1),
    JobKind(BULK_IMPORT_JOB_TYPE, BulkImportPayload, needs_model=False, needs_registry=False,
            names_server_paths=True, concurrency=1),
)}
JOB_TYPES: tuple[str, ...] = tuple(JOB_KINDS)


def job_kind(job_type: str) -> JobKind:
    """The JobKind of ``job_type``; ConfigurationError (field ``type``) if there is none."""
    kind = JOB_KINDS.get(job_type)
    if kind is None:
        raise ConfigurationError("type", f"unknown job type {job_type!r}; use one of "
                                         f"{', '.join(JOB_TYPES)}")
    return kind


def queue_for(job_type: str, base: str) -> str:
    """The queue ``job_type`` runs on for the base queue ``base``."""
    validate_queue_name(base)
    job_kind(job_type)
    if job_type == UPLOAD_JOB_TYPE:
        return base
    name = f"{base}{SEPARATOR}{job_type}"
    try:
        return validate_queue_name(name)
    except ConfigurationError:
        raise ConfigurationError(
            "queue", f"{base!r} is too long to be a base queue: the {job_type} jobs would need "
            f"the queue {name!r}, over 128 characters",
        ) from None


def payload_problems(job_type: str, data: Any) -> dict[str, str]:
    """``{field: problem}`` for a payload of ``job_type``; empty when it is valid."""
    model = job_kind(job_type).payload
    if not isinstance(data, dict):
        return {"payload": f"must be a JSON object, got {type(data).__name__}"}
    try:
        parsed = model.model_validate(data)
        if isinstance(parsed, JobPayload):
            parsed.check()
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]) or "payload"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field (check the spelling)"
            problems.setdefault(name, message)
        return problems
    except InvalidPayloadError as exc:  # a check across models: "field: problem; ..."
        return dict(_split(part) for part in str(exc).split("; "))
    return {}


def validate_payload(job_type: str, data: Any) -> dict[str, Any]:
    """The payload as the worker will read it (defaults filled in); InvalidPayloadError
    naming every bad field, ConfigurationError for an unknown type."""
    problems = payload_problems(job_type, data)
    if problems:
        raise InvalidPayloadError("; ".join(f"{name}: {problem}"
                                            for name, problem in problems.items()))
    dumped: dict[str, Any] = job_kind(job_type).payload.model_validate(data).model_dump(
        mode="json")
    return dumped


def _split(part: str) -> tuple[str, str]:
    name, found, problem = part.partition(": ")
    if found and name.replace(".", "").replace("_", "").isalnum():
        return name, problem
    return "payload", part


class RoutedQueues:
    """The repositories of one base queue's routed queues; ``repository(queue)`` makes (and
    caches) the repository of a queue name."""

    def __init__(self, base: str, repository: Callable[[str], RedisJobRepository]) -> None:
        self.base = validate_queue_name(base)
        self._repository = repository
        self.queues: tuple[str, ...] = tuple(dict.fromkeys(queue_for(t, base)
                                                           for t in JOB_TYPES))

    def for_type(self, job_type: str) -> RedisJobRepository:
        return self._repository(queue_for(job_type, self.base))

    def holding(self, job_types: Iterable[str] = ()) -> list[RedisJobRepository]:
        """The repositories that can hold jobs of ``job_types`` (all when empty). Types docworkers
        does not route (library jobs) live on the base queue."""
        wanted = set(job_types)
        if not wanted:
            return [self._repository(queue) for queue in self.queues]
        queues = {queue_for(t, self.base) if t in JOB_KINDS else self.base for t in wanted}
        return [self._repository(queue) for queue in self.queues if queue in queues]

    async def find_job(self, job_id: str) -> Job | None:
        """The job ``job_id`` in whichever routed queue holds it (the base queue first)."""
        found = await _together(*(repo.find_job(job_id) for repo in self.holding()))
        return next((job for job in found if job is not None), None)

    async def get_job(self, job_id: str) -> Job:
        """The job ``job_id``; JobNotFoundError if no routed queue holds it."""
        job = await self.find_job(job_id)
        if job is None:
            raise JobNotFoundError(f"no job {job_id!r} in queue {self.base!r} or the queues "
                                   "of its job types")
        return job

    async def owner(self, job_id: str) -> RedisJobRepository:
        """The repository of the queue that holds ``job_id``; JobNotFoundError if none does."""
        return self._repository((await self.get_job(job_id)).queue)

    async def list_jobs(self, job_filter: JobFilter) -> list[Job]:
        """Jobs of every routed queue that matches, newest first."""
        repos = self.holding(job_filter.types)
        if len(repos) == 1:
            return await repos[0].list_jobs(job_filter)
        depth = job_filter.offset + job_filter.limit
        if depth > MAX_MERGED:
            raise ConfigurationError("offset", f"a listing across the {len(repos)} queues of "
                                     f"the job types reaches {MAX_MERGED} jobs deep at most; "
                                     "filter by type to page further")
        window = replace(job_filter, offset=0, limit=depth)
        pages = await _together(*(repo.list_jobs(window) for repo in repos))
        return _newest_first(pages, job_filter.offset, job_filter.limit)

    async def dead_letters(self, limit: int = 100, offset: int = 0) -> list[Job]:
        """Dead jobs of every routed queue, most recent first."""
        depth = offset + limit
        pages = await _together(*(repo.dead_letters(limit=depth)
                                       for repo in self.holding()))
        return _newest_first(pages, offset, limit, finished=True)

    async def list_workers(self) -> list[dict[str, Any]]:
        """Live workers of every routed queue."""
        found = await _together(*(repo.list_workers() for repo in self.holding()))
        return [worker for workers in found for worker in workers]

    async def purge_dead_letters(self) -> int:
        return sum(await _together(*(repo.purge_dead_letters()
                                          for repo in self.holding())))

    async def stats_by_queue(self) -> dict[str, QueueStats]:
        repos = self.holding()
        found = await _together(*(repo.stats() for repo in repos))
        return {repo.queue: stats for repo, stats in zip(repos, found, strict=True)}

    async def stats(self) -> QueueStats:
        """The statistics of all routed queues added up, under the base queue's name."""
        return combine_stats(self.base, list((await self.stats_by_queue()).values()))


def combine_stats(queue: str, parts: Sequence[QueueStats]) -> QueueStats:
    """Counts and totals summed, the average processing time weighted, workers listed;
    ``parts`` starts with the base queue's."""

    def summed(pick: Callable[[QueueStats], dict[str, int]]) -> dict[str, int]:
        total: dict[str, int] = {}
        for part in parts:
            for key, count in pick(part).items():
                total[key] = total.get(key, 0) + count
        return total

    completed = sum(p.total_completed for p in parts)
    return replace(  # fields not combined here are the base queue's (parts[0])
        parts[0], queue=queue, by_status=summed(lambda p: p.by_status),
        completed_by_type=summed(lambda p: p.completed_by_type),
        failed_by_type=summed(lambda p: p.failed_by_type), total_completed=completed,
        total_failed=sum(p.total_failed for p in parts),
        total_dead=sum(p.total_dead for p in parts),
        total_retried=sum(p.total_retried for p in parts),
        total_lease_expired=sum(p.total_lease_expired for p in parts),
        average_processing_time=sum(p.average_processing_time * p.total_completed
                                    for p in parts) / completed if completed else 0.0,
        active_workers=sum(p.active_workers for p in parts),
        workers=[worker for p in parts for worker in p.workers],
    )


_EPOCH = datetime.min.replace(tzinfo=UTC)
_T = TypeVar("_T")


async def _together(*calls: Awaitable[_T]) -> list[_T]:
    """The calls' results, run concurrently. On the first failure the others are cancelled and
    awaited before it is re-raised, so none outlives the caller (and its closed connections)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _newest_first(pages: Sequence[list[Job]], offset: int, limit: int, *,
                  finished: bool = False) -> list[Job]:
    def when(job: Job) -> datetime:
        stamp = (job.completed_at or job.updated_at) if finished else job.created_at
        return stamp or job.created_at or _EPOCH

    merged = sorted((job for page in pages for job in page), key=when, reverse=True)
    return merged[offset:offset + limit]
