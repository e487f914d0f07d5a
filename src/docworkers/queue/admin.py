"""Running a queue by hand: pause and resume it, run a waiting job now, and retry or delete the
dead-lettered jobs that match a filter. Mixed into
:class:`~docworkers.queue.repository.RedisJobRepository`.

Pausing is a flag key that reserve.lua reads in the same script that would lease jobs, so no
worker takes a job of a paused queue, however many there are and whenever they last looked;
nothing else changes (jobs are still enqueued, due delayed jobs still become ready, expired
leases are still recovered, running jobs finish). Resuming wakes idle workers at once.

Bulk actions on the dead-letter queue walk it (it is capped, ``dead_letter_cap``) and move each
matching job with the one-job scripts (requeue.lua, delete.lua), so each job changes state
atomically and a job that changed meanwhile (requeued by someone else, say) is left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, cast

from docworkers.errors import InvalidStateError, JobNotFoundError
from docworkers.queue.dead_filter import DeadLetterFilter
from docworkers.queue.job import Job, JobStatus, ms_time
from docworkers.queue.redis.keys import validate_job_id

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from docworkers.queue.redis.errors import RedisErrors
    from docworkers.queue.redis.keys import QueueKeys
    from docworkers.queue.redis.scripts import QueueScripts
    from docworkers.queue.repository_config import RepositoryConfig

PAGE = 500  # job ids read per round trip when walking a collection
BULK_CONCURRENCY = 32  # one-job script calls in flight during a bulk action
SCHEDULED_KINDS = (JobStatus.QUEUED, JobStatus.RETRYING)  # delayed jobs are queued, with run_at


class QueueAdmin:
    """Operations on a whole queue, mixed into RedisJobRepository (which sets the attributes
    and provides the methods declared here)."""

    client: aioredis.Redis
    config: RepositoryConfig
    keys: QueueKeys
    _scripts: QueueScripts
    _errors: RedisErrors

    if TYPE_CHECKING:
        @property
        def queue(self) -> str: ...
        async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]: ...
        async def requeue(self, job_id: str) -> None: ...
        async def delete_job(self, job_id: str) -> bool: ...

    # -- pause ------------------------------------------------------------------------------

    async def pause(self) -> bool:
        """Stop workers reserving this queue's jobs; False if it was paused already."""
        return await self._set_paused(True)

    async def resume(self) -> bool:
        """Let workers reserve again and wake the idle ones; False if it was not paused."""
        return await self._set_paused(False)

    async def _set_paused(self, paused: bool) -> bool:
        k = self.keys
        with self._errors:
            changed = await self._scripts.pause(keys=[k.paused, k.queued, k.intake],
                                                args=["1" if paused else "0",
                                                      self.config.notify_cap])
        return bool(changed)

    async def paused_since(self) -> datetime | None:
        """When the queue was paused; None while it runs."""
        with self._errors:
            raw = await self.client.get(self.keys.paused)
        return None if raw is None else ms_time(int(raw))

    # -- waiting jobs -----------------------------------------------------------------------

    async def scheduled_jobs(self, status: JobStatus | None = None, *, limit: int = 100,
                             offset: int = 0) -> list[Job]:
        """Jobs waiting for their time, soonest first: delayed ones (status queued) and
        retries (status retrying); ``status`` keeps one kind."""
        if status is not None and status not in SCHEDULED_KINDS:
            raise InvalidStateError(f"no job waits in the scheduled set as {status}; use "
                                    "queued (delayed) or retrying")
        matched: list[Job] = []
        skipped = start = 0
        while len(matched) < limit:
            ids = await self._ids(self.keys.scheduled, start, reverse=False)
            if not ids:
                break
            start += PAGE
            for job in await self.get_jobs(ids):
                if status is not None and job.status != status:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                matched.append(job)
                if len(matched) >= limit:
                    break
        return matched

    async def run_now(self, job_id: str) -> None:
        """Move a delayed or retrying job to the ready queue now (its retry count stays)."""
        validate_job_id(job_id)
        k = self.keys
        with self._errors:
            previous, moved = await self._scripts.run_now(
                keys=[k.job(job_id), k.scheduled, k.queued, k.sequence, k.intake,
                      *k.absorb_keys()],
                args=[job_id, self.config.notify_cap])
        if not previous:
            raise JobNotFoundError(f"no job {job_id!r} in queue {self.queue!r}")
        if not int(moved):
            raise InvalidStateError(f"job {job_id!r} is {previous}, not waiting for its time; "
                                    "only delayed or retrying jobs can be run now")

    # -- dead letters by filter -------------------------------------------------------------

    async def dead_matching(self, dead_filter: DeadLetterFilter, *, limit: int = 100,
                            offset: int = 0) -> tuple[list[Job], int]:
        """A page of the dead jobs that match, most recent first, and how many match. Without
        a filter, one page is read (not the whole set)."""
        if dead_filter.is_empty:
            with self._errors:
                total = int(await self.client.zcard(self.keys.dead))
            if limit <= 0 or offset >= total:
                return [], total
            with self._errors:
                ids = await self.client.zrevrange(self.keys.dead, offset, offset + limit - 1)
            return await self.get_jobs(cast("list[str]", ids)), total
        jobs = await self._all_dead(dead_filter)
        return jobs[offset:offset + limit], len(jobs)

    async def retry_dead(self, dead_filter: DeadLetterFilter) -> int:
        """Queue again, with a fresh retry budget, every dead job that matches; how many."""
        async def retry(job_id: str) -> bool:
            try:
                await self.requeue(job_id)
            except (InvalidStateError, JobNotFoundError):
                return False  # requeued, deleted or running since the walk: leave it
            return True

        return await self._each_dead(dead_filter, retry)

    async def delete_dead(self, dead_filter: DeadLetterFilter) -> int:
        """Delete every dead job that matches; how many."""
        async def delete(job_id: str) -> bool:
            try:
                return await self.delete_job(job_id)
            except InvalidStateError:
                return False  # requeued and running since the walk
        return await self._each_dead(dead_filter, delete)

    async def _each_dead(self, dead_filter: DeadLetterFilter,
                         action: Callable[[str], Awaitable[bool]]) -> int:
        ids = [job.id for job in await self._all_dead(dead_filter)]
        done = 0
        for i in range(0, len(ids), BULK_CONCURRENCY):
            done += sum(await asyncio.gather(*map(action, ids[i:i + BULK_CONCURRENCY])))
        return done

    async def _all_dead(self, dead_filter: DeadLetterFilter) -> list[Job]:
        """Every dead job that matches, most recent first (the set is capped)."""
        matched: list[Job] = []
        start = 0
        while ids := await self._ids(self.keys.dead, start, reverse=True):
            start += PAGE
            jobs = await self.get_jobs(ids)
            matched += [job for job in jobs
                        if job.status == JobStatus.DEAD and dead_filter.matches(job)]
        return matched

    async def _ids(self, key: str, start: int, *, reverse: bool) -> list[str]:
        with self._errors:
            if reverse:
                reply = await self.client.zrevrange(key, start, start + PAGE - 1)
            else:
                reply = await self.client.zrange(key, start, start + PAGE - 1)
        return cast("list[str]", reply)
