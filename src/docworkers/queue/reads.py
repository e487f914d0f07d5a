"""The read side of :class:`~docworkers.queue.repository.RedisJobRepository`: finding and
listing jobs, the dead-letter queue, statistics and live workers. Nothing here changes a job;
reads of many keys are pipelined (one round trip). Reads that look at waiting jobs first move
the jobs pushed on the intake into the queue (absorb.lua, see intake.py), so a job is found,
listed and counted as soon as its enqueue returned. Also the connection checks (ping, server
settings) and :meth:`JobReads.owns`, the fencing check other writers make before each write."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import NoScriptError, RedisError

from docworkers.errors import JobNotFoundError
from docworkers.queue.events import JobEvent, parse_events
from docworkers.queue.filters import JobFilter, JobPage
from docworkers.queue.job import Job, JobStatus
from docworkers.queue.redis.clients import is_cluster
from docworkers.queue.redis.errors import redacted
from docworkers.queue.redis.keys import validate_job_id
from docworkers.queue.stats import QueueStats

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    from docworkers.queue.redis.errors import RedisErrors
    from docworkers.queue.redis.keys import QueueKeys
    from docworkers.queue.redis.scripts import QueueScripts
    from docworkers.queue.repository_config import RepositoryConfig

log = logging.getLogger("docworkers.queue")

COUNT_BUDGET = 5000  # jobs a filtered listing reads past its page to count the matches

_STATUS_COLLECTION = {
    JobStatus.PENDING: "pending",
    JobStatus.PROCESSING: "active",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.DEAD: "dead",
    JobStatus.CANCELLED: "cancelled",
}


class JobReads:
    """Read-only queries of one queue's jobs, mixed into RedisJobRepository (which sets the
    attributes declared here)."""

    client: aioredis.Redis
    config: RepositoryConfig
    keys: QueueKeys
    url: str
    _errors: RedisErrors  # ``with self._errors:`` around every command
    _scripts: QueueScripts

    @property
    def queue(self) -> str:
        return self.config.queue

    async def ping(self) -> None:
        with self._errors:
            await cast("Awaitable[bool]", self.client.ping())

    async def check_server(self) -> list[str]:
        """Ping, then return warnings about settings that can lose jobs (also logged)."""
        await self.ping()
        try:
            policies = await self._eviction_policies()
        except RedisError:
            return []  # CONFIG is disabled on some managed servers
        warnings = [
            f"Redis at {redacted(self.url)}{where} has maxmemory-policy={policy}: it may EVICT "
            "job keys and lose jobs. Set maxmemory-policy to noeviction."
            for where, policy in policies.items() if policy != "noeviction"]
        for warning in warnings:
            log.warning(warning)
        return warnings

    async def _eviction_policies(self) -> dict[str, str]:
        """maxmemory-policy of the server (key ""), or of each primary of a cluster (key
        " (node host:port)"): any primary that evicts can lose the jobs of its slots."""
        if not is_cluster(self.client):
            conf = await self.client.config_get("maxmemory-policy")
            return {"": conf.get("maxmemory-policy", "noeviction")}
        cluster = cast("AsyncRedisCluster", self.client)
        policies = {}
        for node in cluster.get_primaries():
            conf = await cluster.config_get("maxmemory-policy", target_nodes=node)
            policies[f" (node {node.name})"] = conf.get("maxmemory-policy", "noeviction")
        return policies

    async def owns(self, job_id: str, token: int) -> bool:
        """Whether the attempt holding fencing token ``token`` still owns the job (it is
        processing under that token). One atomic read: writers outside this queue's keys (the
        document registry, the vector store) call it right before each write."""
        with self._errors:
            current, status = await cast("Awaitable[list[str | None]]", self.client.hmget(
                self.keys.job(job_id), ["token", "status"]))
        return current == str(token) and status == JobStatus.PROCESSING.value

    async def _absorbed(self, add_reads: Callable[[Any], object]) -> list[Any]:
        """absorb.lua (the intake's jobs into the queue), then the reads ``add_reads`` puts on
        a pipeline, in one round trip: the reads see every job pushed so far without a round
        trip of their own for the absorb. All keys are the queue's (one slot on a cluster).
        When Redis lacks the script (restarted, flushed), the script runs on its own, which
        loads it, and the reads are sent again after it. Their replies, in order."""
        keys = self.keys.absorb_keys()
        with self._errors:
            # Errors raise (raise_on_error): a cluster pipeline then retries a connection the
            # cluster closed under it (a primary failed over), as its single commands do.
            pipe = self.client.pipeline(transaction=False)
            pipe.execute_command("EVALSHA", self._scripts.absorb.sha, len(keys), *keys)
            add_reads(pipe)
            try:
                return list((await pipe.execute())[1:])
            except NoScriptError:
                pass
            await self._scripts.absorb(keys=keys, args=[])
            pipe = self.client.pipeline(transaction=False)
            add_reads(pipe)
            return list(await pipe.execute())

    async def _range(self, key: str, start: int, stop: int) -> list[str]:
        with self._errors:
            return cast("list[str]", await self.client.zrange(key, start, stop))

    async def find_job(self, job_id: str) -> Job | None:
        validate_job_id(job_id)
        key = self.keys.job(job_id)
        data = (await self._absorbed(lambda pipe: pipe.hgetall(key)))[0]
        return Job.from_hash(data, self.queue) if data else None

    async def get_job(self, job_id: str) -> Job:
        job = await self.find_job(job_id)
        if job is None:
            raise JobNotFoundError(f"no job {job_id!r} in queue {self.queue!r}")
        return job

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs that still exist among ``job_ids``, in that order (one round trip)."""
        if not job_ids:
            return []
        rows = await self._absorbed(lambda pipe: [pipe.hgetall(self.keys.job(job_id))
                                                  for job_id in job_ids])
        return [Job.from_hash(row, self.queue) for row in rows if row]

    def _collection_for(self, status: JobStatus) -> str | None:
        name = _STATUS_COLLECTION.get(status)
        return getattr(self.keys, name) if name else None

    async def list_jobs(self, job_filter: JobFilter | None = None) -> list[Job]:
        """Jobs newest first, filtered by type, status, tags, user, payload, text and
        creation time."""
        return (await self.page_jobs(job_filter, count=False)).jobs

    async def page_jobs(self, job_filter: JobFilter | None = None, *,
                        count: bool = True) -> JobPage:
        """A page of :meth:`list_jobs` and, with ``count``, how many jobs match in all: exact
        when the ids alone answer (no filter, or one status with a collection of its own) or
        when at most :data:`COUNT_BUDGET` jobs past the page remain to read; else None."""
        f = job_filter or JobFilter()
        if f.queues and self.queue not in f.queues:
            return JobPage([], 0)
        source = self.keys.all_jobs
        if len(f.statuses) == 1 and (only := self._collection_for(next(iter(f.statuses)))):
            source = only
        if not f.reads_jobs and (source != self.keys.all_jobs or not f.statuses):
            ids, total = await self._absorbed(lambda pipe: (
                pipe.zrevrange(source, f.offset, f.offset + f.limit - 1), pipe.zcard(source)))
            return JobPage(await self.get_jobs(cast("list[str]", ids)),
                           int(total) if count else None)
        low = f.created_after.timestamp() * 1000 if f.created_after else "-inf"
        high = f.created_before.timestamp() * 1000 if f.created_before else "+inf"
        matched: list[Job] = []
        total = read = start = 0
        page = 500
        while total < f.offset + f.limit or (count and read < COUNT_BUDGET):
            reply = await self._absorbed(functools.partial(
                _page_of_ids, source, start, page,
                (high, low) if source == self.keys.all_jobs else None))
            ids = cast("list[str]", reply[0])
            if not ids:
                return JobPage(matched, total if count else None)
            start += page
            if total >= f.offset + f.limit:
                read += len(ids)
            for job in await self.get_jobs(ids):
                if f.matches(job):
                    if f.offset <= total < f.offset + f.limit:
                        matched.append(job)
                    total += 1
        return JobPage(matched, None)

    async def job_events(self, job_id: str) -> list[JobEvent]:
        """The recorded events of a job, oldest first (bounded: see docworkers.queue.events)."""
        validate_job_id(job_id)
        with self._errors:
            raw = await cast("Awaitable[list[str]]",
                             self.client.lrange(self.keys.events(job_id), 0, -1))
        return parse_events(raw)

    async def active_jobs(self) -> list[Job]:
        with self._errors:
            ids = await self.client.zrange(self.keys.active, 0, -1)
        return await self.get_jobs(cast("list[str]", ids))

    async def dead_letters(self, limit: int = 100, offset: int = 0) -> list[Job]:
        """The dead-letter queue, most recent first."""
        with self._errors:
            ids = await self.client.zrevrange(self.keys.dead, offset, offset + limit - 1)
        return await self.get_jobs(cast("list[str]", ids))

    async def stats(self) -> QueueStats:
        """Counts by status, totals, average processing time and live workers, one round trip."""
        k = self.keys
        with self._errors:
            now_s, now_us = await self.client.time()  # the clock of the workers' heartbeats
        now_ms = now_s * 1000 + now_us // 1000

        def reads(pipe: Any) -> None:
            for key in k.collections():
                pipe.zcard(key)
            pipe.hgetall(k.stats)
            pipe.zrangebyscore(k.workers, now_ms, "+inf")
            pipe.zrangebyscore(k.scheduled, "-inf", "+inf")
            pipe.zrangebyscore(k.supervisors, now_ms, "+inf")
            pipe.exists(k.paused)

        (*counts, totals, worker_names, scheduled_ids, supervisor_names,
         paused) = await self._absorbed(reads)
        with self._errors:
            workers: list[dict[str, Any]] = []
            supervisors: list[dict[str, Any]] = []
            if worker_names or supervisor_names:
                raw = await self.client.mget([k.worker(n) for n in worker_names]
                                             + [k.supervisor(n) for n in supervisor_names])
                workers = [json.loads(r) for r in raw[:len(worker_names)] if r]
                supervisors = [json.loads(r) for r in raw[len(worker_names):] if r]
        pending, queued, scheduled, active, completed, failed, dead, cancelled = counts
        retrying = 0
        if scheduled:
            statuses = await self._statuses(scheduled_ids)
            retrying = sum(1 for s in statuses if s == JobStatus.RETRYING)
        completed_by_type = _by_type(totals, "completed:")
        count = sum(completed_by_type.values())  # complete.lua counts by type only
        return QueueStats(
            queue=self.queue,
            by_status={
                "pending": pending,
                "queued": queued + scheduled - retrying,
                "retrying": retrying,
                "processing": active,
                "completed": completed,
                "failed": failed,
                "dead": dead,
                "cancelled": cancelled,
            },
            completed_by_type=completed_by_type,
            failed_by_type=_by_type(totals, "failed:"),
            total_completed=count,
            total_failed=int(totals.get("failed", 0)),
            total_dead=int(totals.get("dead", 0)),
            total_retried=int(totals.get("retried", 0)),
            total_lease_expired=int(totals.get("lease_expired", 0)),
            average_processing_time=int(totals.get("processing_ms", 0)) / 1000 / count
            if count
            else 0.0,
            active_workers=len(workers),
            workers=workers,
            supervisors=supervisors,
            paused=[self.queue] if paused else [],
            delayed=scheduled - retrying,
        )

    async def queue_depth(self) -> int:
        """Ready jobs a worker could take now (not delayed, not running; none while the queue
        is paused, so autoscaling adds no worker for them): one round trip."""
        ready, paused = await self._absorbed(lambda pipe: (
            pipe.zcard(self.keys.queued), pipe.exists(self.keys.paused)))
        return 0 if paused else int(ready)

    async def _statuses(self, job_ids: Sequence[str]) -> list[str]:
        with self._errors:
            pipe = self.client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hget(self.keys.job(job_id), "status")
            return [s for s in await pipe.execute() if s]

    async def list_workers(self) -> list[dict[str, Any]]:
        return (await self.stats()).workers


def _page_of_ids(source: str, start: int, page: int, scores: tuple[Any, Any] | None,
                 pipe: Any) -> None:
    """Queue the read of ``page`` ids of ``source`` from ``start``, newest first, by score
    between ``scores`` (high, low) when given."""
    if scores is None:
        pipe.zrevrange(source, start, start + page - 1)
    else:
        pipe.zrevrangebyscore(source, *scores, start=start, num=page)


def _by_type(totals: Mapping[str, str], prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: int(v) for k, v in totals.items() if k.startswith(prefix)}
