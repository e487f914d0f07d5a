"""Job types on queues of their own: which queue a type runs on, and reading across them.

A worker reserves whatever job is next on its queue and fails a type it does not handle. An
application whose workers each handle some of its job types therefore gives each such type a
queue of its own, derived from a *base* queue: a routed type runs on ``<base>.<type>`` (e.g.
``default.bulk_import``), every other type on the base queue itself. :class:`QueueRouter` says
which queue that is; :class:`RoutedQueues` answers the questions a front door asks without
knowing a job's type (where is job X, which jobs match this filter, how many are queued) across
all of them.

This module knows no job type: the application names its routed types (docworkers' document
jobs do so in :mod:`docworkers.ingest.jobs.kinds`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from docworkers.errors import ConfigurationError, JobNotFoundError
from docworkers.queue.filters import JobFilter, JobPage
from docworkers.queue.job import Job
from docworkers.queue.redis.keys import validate_queue_name
from docworkers.queue.stats import QueueStats

if TYPE_CHECKING:
    from docworkers.queue.repository import RedisJobRepository

__all__ = ["MAX_MERGED", "SEPARATOR", "QueueRouter", "RoutedQueues", "combine_stats"]

SEPARATOR = "."  # between the base queue and the type: <base>.<type>
MAX_MERGED = 10_000  # deepest a listing that merges several queues reaches (JobFilter's cap)


class QueueRouter:
    """Which queue each job type runs on, for the base queue ``base``.

    Each type of ``routed`` runs on ``<base>.<type>``; any other type on ``base``. With
    ``known`` (the application's job types; the routed ones count as known too),
    :meth:`queue_for` refuses any other type, so a misspelt type is an error rather than a job
    no worker takes.
    """

    def __init__(self, base: str, routed: Iterable[str], *,
                 known: Iterable[str] | None = None) -> None:
        self.base = validate_queue_name(base)
        self.routed: tuple[str, ...] = tuple(dict.fromkeys(routed))
        self.known: tuple[str, ...] | None = (
            None if known is None else tuple(dict.fromkeys([*known, *self.routed])))

    def __repr__(self) -> str:
        return f"QueueRouter({self.base!r}, routed={self.routed!r})"

    def queue_for(self, job_type: str) -> str:
        """The queue of ``job_type``; ConfigurationError naming ``type`` for a type outside
        ``known``, or ``queue`` when the base is too long to make the type's queue name."""
        if self.known is not None and job_type not in self.known:
            raise ConfigurationError("type", f"unknown job type {job_type!r}; use one of "
                                             f"{', '.join(self.known)}")
        if job_type not in self.routed:
            return self.base
        name = f"{self.base}{SEPARATOR}{job_type}"
        try:
            return validate_queue_name(name)
        except ConfigurationError:
            raise ConfigurationError(
                "queue", f"{self.base!r} is too long to be a base queue: the {job_type} jobs "
                f"would need the queue {name!r}, over 128 characters",
            ) from None

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue of the base: the base queue first, then each routed type's."""
        return (self.base, *(self.queue_for(job_type) for job_type in self.routed))

    def holding(self, job_types: Iterable[str] = ()) -> tuple[str, ...]:
        """The queues that can hold jobs of ``job_types`` (all of them when empty), in the
        order of :attr:`queues`. A type that is not routed, known or not, lives on the base
        queue."""
        wanted = set(job_types)
        if not wanted:
            return self.queues
        held = {self.queue_for(t) if t in self.routed else self.base for t in wanted}
        return tuple(queue for queue in self.queues if queue in held)


class RoutedQueues:
    """The repositories of a router's queues, read together; ``repository(queue)`` makes (and
    should cache) the repository of a queue name."""

    def __init__(self, router: QueueRouter,
                 repository: Callable[[str], RedisJobRepository]) -> None:
        self.router = router
        self.base = router.base
        self.queues = router.queues  # checks every routed queue name now
        self._repository = repository

    def for_type(self, job_type: str) -> RedisJobRepository:
        return self._repository(self.router.queue_for(job_type))

    def holding(self, job_types: Iterable[str] = ()) -> list[RedisJobRepository]:
        """The repositories that can hold jobs of ``job_types`` (all when empty)."""
        return [self._repository(queue) for queue in self.router.holding(job_types)]

    async def find_job(self, job_id: str) -> Job | None:
        """The job ``job_id`` in whichever queue holds it (the base queue first)."""
        found = await _together(*(repo.find_job(job_id) for repo in self.holding()))
        return next((job for job in found if job is not None), None)

    async def get_job(self, job_id: str) -> Job:
        """The job ``job_id``; JobNotFoundError if no queue holds it."""
        job = await self.find_job(job_id)
        if job is None:
            raise JobNotFoundError(f"no job {job_id!r} in queue {self.base!r} or the queues "
                                   "of its job types")
        return job

    async def owner(self, job_id: str) -> RedisJobRepository:
        """The repository of the queue that holds ``job_id``; JobNotFoundError if none does."""
        return self._repository((await self.get_job(job_id)).queue)

    async def list_jobs(self, job_filter: JobFilter) -> list[Job]:
        """Jobs of every queue that matches, newest first."""
        return (await self.page_jobs(job_filter, count=False)).jobs

    async def page_jobs(self, job_filter: JobFilter, *, count: bool = True) -> JobPage:
        """A page of :meth:`list_jobs` and the number of matches in all queues (None when a
        queue could not count its own cheaply; see ``JobReads.page_jobs``)."""
        repos = [repo for repo in self.holding(job_filter.types)
                 if not job_filter.queues or repo.queue in job_filter.queues]
        if len(repos) <= 1:
            return await repos[0].page_jobs(job_filter, count=count) if repos \
                else JobPage([], 0)
        depth = job_filter.offset + job_filter.limit
        if depth > MAX_MERGED:
            raise ConfigurationError("offset", f"a listing across the {len(repos)} queues of "
                                     f"the job types reaches {MAX_MERGED} jobs deep at most; "
                                     "filter by type or queue to page further")
        window = replace(job_filter, offset=0, limit=depth)
        pages = await _together(*(repo.page_jobs(window, count=count) for repo in repos))
        totals = [page.total for page in pages]
        return JobPage(
            _newest_first([page.jobs for page in pages], job_filter.offset, job_filter.limit),
            None if None in totals else sum(t or 0 for t in totals))

    async def dead_letters(self, limit: int = 100, offset: int = 0) -> list[Job]:
        """Dead jobs of every queue, most recent first."""
        depth = offset + limit
        pages = await _together(*(repo.dead_letters(limit=depth)
                                       for repo in self.holding()))
        return _newest_first(pages, offset, limit, finished=True)

    async def list_workers(self) -> list[dict[str, Any]]:
        """Live workers of every queue."""
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
        """The statistics of all queues added up, under the base queue's name."""
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
        paused=[queue for p in parts for queue in p.paused],
        delayed=sum(p.delayed for p in parts),
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
