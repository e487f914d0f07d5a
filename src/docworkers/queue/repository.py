"""The Redis job repository: every state change is one Lua script, one round trip.

Round trips: one to enqueue (a bulk enqueue sends 500 jobs per script call, all pipelined;
concurrent single enqueues share calls, see coalescer.py), one per reserved batch, with the
completions of finished jobs in the same pipeline; an idle worker's wait and its next
reservation also share one (waiter.py). Reads (get, list, stats) are pipelined.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from docworkers.errors import (
    ConfigurationError,
    InvalidStateError,
    JobNotFoundError,
    LeaseLostError,
)
from docworkers.queue.coalescer import Coalescer
from docworkers.queue.filters import JobFilter
from docworkers.queue.job import DEFAULT_MAX_RETRIES, RESERVE_FIELDS, Job, JobStatus
from docworkers.queue.protocol import Failure, Reservation
from docworkers.queue.redis.clients import async_client
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import QueueKeys, validate_job_id, validate_queue_name
from docworkers.queue.redis.scripts import QueueScripts, ReserveReply, ScriptCall, run_pipelined
from docworkers.queue.spec import JobSpec
from docworkers.queue.stats import QueueStats
from docworkers.queue.waiter import MAX_BLOCK, Waiter

log = logging.getLogger("docworkers.queue")

ENQUEUE_BATCH = 500
_STATUS_COLLECTION = {
    JobStatus.PENDING: "pending",
    JobStatus.PROCESSING: "active",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.DEAD: "dead",
    JobStatus.CANCELLED: "cancelled",
}


_encode_result = json.JSONEncoder(separators=(",", ":")).encode


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))


@dataclass(frozen=True, kw_only=True, slots=True)
class RepositoryConfig:
    """How one queue keeps its jobs. Durations are seconds."""

    queue: str = "default"
    namespace: str = "dw"
    completed_retention: float = 24 * 3600.0
    failed_retention: float = 7 * 24 * 3600.0
    dead_letter_cap: int = 10_000
    default_max_retries: int = DEFAULT_MAX_RETRIES
    notify_cap: int = 1_000

    def __post_init__(self) -> None:
        validate_queue_name(self.queue)
        validate_queue_name(self.namespace)
        for name in ("completed_retention", "failed_retention"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(name, "must be a positive number of seconds")
        for name in ("dead_letter_cap", "notify_cap"):
            if getattr(self, name) < 1:
                raise ConfigurationError(name, "must be at least 1")
        if self.default_max_retries < 0:
            raise ConfigurationError("default_max_retries", "must not be negative")


class RedisJobRepository:
    """Jobs of one queue in Redis. Safe to share between tasks of one event loop."""

    def __init__(
        self,
        client: aioredis.Redis,
        config: RepositoryConfig | None = None,
        *,
        url: str = "redis",
    ) -> None:
        self.client = client
        self.config = config or RepositoryConfig()
        self.keys = QueueKeys(self.config.queue, self.config.namespace)
        self.url = url
        self._scripts = QueueScripts.register(client)
        self._loaded: set[str] = set()  # SHAs of scripts this repository loaded into Redis
        self._errors = RedisErrors(url=url)  # ``with self._errors:`` around every command
        self._enqueue_coalescer = Coalescer(self._enqueue_encoded, limit=ENQUEUE_BATCH)

    @classmethod
    def from_url(cls, url: str, config: RepositoryConfig | None = None, **options: Any) -> Self:
        """Connect lazily to ``url`` (``redis://``, ``rediss://`` or ``unix://``) with the
        settings of :mod:`docworkers.queue.redis.clients`; ``options`` override redis-py's."""
        return cls(async_client(url, **options), config, url=url)

    def for_queue(self, queue: str) -> RedisJobRepository:
        """The repository of ``queue`` with this one's settings and connection pool: one pool
        serves every queue of a process. Close only the repository that made the pool."""
        return RedisJobRepository(self.client, replace(self.config, queue=queue), url=self.url)

    @property
    def queue(self) -> str:
        return self.config.queue

    # -- connection -------------------------------------------------------------------------

    async def ping(self) -> None:
        with self._errors:
            await cast("Awaitable[bool]", self.client.ping())

    async def check_server(self) -> list[str]:
        """Ping, then return warnings about settings that can lose jobs (also logged)."""
        await self.ping()
        warnings: list[str] = []
        try:
            conf = await self.client.config_get("maxmemory-policy")
        except RedisError:
            return warnings  # CONFIG is disabled on some managed servers
        policy = conf.get("maxmemory-policy", "noeviction")
        if policy != "noeviction":
            warnings.append(
                f"Redis at {self.url} has maxmemory-policy={policy}: it may EVICT job keys and "
                "lose jobs. Set maxmemory-policy to noeviction."
            )
        for warning in warnings:
            log.warning(warning)
        return warnings

    async def close(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- creating ---------------------------------------------------------------------------

    def _enqueue_keys(self) -> list[str]:
        k = self.keys
        return [k.job_prefix, k.queued, k.scheduled, k.pending, k.all_jobs, k.sequence, k.notify]

    async def enqueue(self, job_type: str, payload: Mapping[str, Any] | None = None,
                      **options: Any) -> str:
        """Enqueue one job in one round trip; returns its id. See :class:`JobSpec`.

        Concurrent calls share script calls (see :class:`Coalescer`).
        """
        job_args = JobSpec(job_type, payload or {}, **options).script_args()
        await self._enqueue_coalescer.submit(job_args)
        return job_args[0]

    async def create_job(self, job_type: str, payload: Mapping[str, Any] | None = None,
                         **options: Any) -> str:
        """Create a ``pending`` job that runs only once :meth:`requeue` queues it."""
        spec = JobSpec(job_type, payload or {}, **options)
        args = spec.script_args(pending=True)
        with self._errors:
            await self._scripts.enqueue(
                keys=self._enqueue_keys(), args=[1, self.config.notify_cap, *args]
            )
        return args[0]

    async def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]:
        """Enqueue many jobs, 500 per script call, all calls in one pipelined round trip."""
        encoded = [spec.script_args() for spec in specs]
        await self._enqueue_encoded(encoded)
        return [job_args[0] for job_args in encoded]

    async def _enqueue_encoded(self, encoded: Sequence[tuple[str, ...]]) -> None:
        if not encoded:
            return
        keys = self._enqueue_keys()
        calls: list[ScriptCall] = []
        for start in range(0, len(encoded), ENQUEUE_BATCH):
            batch = encoded[start : start + ENQUEUE_BATCH]
            args: list[Any] = [len(batch), self.config.notify_cap]
            for job_args in batch:
                args.extend(job_args)
            calls.append(ScriptCall(self._scripts.enqueue, keys, args))
        if len(calls) == 1:
            with self._errors:
                await self._scripts.enqueue(keys=keys, args=calls[0].args)
        else:
            await self._pipelined(calls)

    # -- reading ----------------------------------------------------------------------------

    async def find_job(self, job_id: str) -> Job | None:
        validate_job_id(job_id)
        with self._errors:
            reply = self.client.hgetall(self.keys.job(job_id))
            data = await cast("Awaitable[dict[str, str]]", reply)
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
        with self._errors:
            pipe = self.client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hgetall(self.keys.job(job_id))
            rows = await pipe.execute()
        return [Job.from_hash(row, self.queue) for row in rows if row]

    def _collection_for(self, status: JobStatus) -> str | None:
        name = _STATUS_COLLECTION.get(status)
        return getattr(self.keys, name) if name else None

    async def list_jobs(self, job_filter: JobFilter | None = None) -> list[Job]:
        """Jobs newest first, filtered by type, status, tags, user and creation time."""
        f = job_filter or JobFilter()
        source = self.keys.all_jobs
        if len(f.statuses) == 1 and (only := self._collection_for(next(iter(f.statuses)))):
            source = only
        low = f.created_after.timestamp() * 1000 if f.created_after else "-inf"
        high = f.created_before.timestamp() * 1000 if f.created_before else "+inf"
        matched: list[Job] = []
        skipped = 0
        start, page = 0, 500
        while len(matched) < f.limit:
            with self._errors:
                if source == self.keys.all_jobs:
                    reply = await self.client.zrevrangebyscore(
                        source, high, low, start=start, num=page
                    )
                else:
                    reply = await self.client.zrevrange(source, start, start + page - 1)
            ids = cast("list[str]", reply)
            if not ids:
                break
            start += page
            for job in await self.get_jobs(ids):
                if not f.matches(job):
                    continue
                if skipped < f.offset:
                    skipped += 1
                    continue
                matched.append(job)
                if len(matched) >= f.limit:
                    break
        return matched

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
            now_s, now_us = await self.client.time()
            now_ms = now_s * 1000 + now_us // 1000
            pipe = self.client.pipeline(transaction=False)
            for key in k.collections():
                pipe.zcard(key)
            pipe.hgetall(k.stats)
            pipe.zrangebyscore(k.workers, now_ms, "+inf")
            pipe.zrangebyscore(k.scheduled, "-inf", "+inf")
            pipe.zrangebyscore(k.supervisors, now_ms, "+inf")
            *counts, totals, worker_names, scheduled_ids, supervisor_names = await pipe.execute()
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
        count = int(totals.get("completed", 0))
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
            completed_by_type=_by_type(totals, "completed:"),
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
        )

    async def queue_depth(self) -> int:
        """Ready jobs waiting (not delayed, not running): one ZCARD, for autoscaling."""
        with self._errors:
            return int(await self.client.zcard(self.keys.queued))

    async def _statuses(self, job_ids: Sequence[str]) -> list[str]:
        with self._errors:
            pipe = self.client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hget(self.keys.job(job_id), "status")
            return [s for s in await pipe.execute() if s]

    async def list_workers(self) -> list[dict[str, Any]]:
        return (await self.stats()).workers

    # -- the worker's side ------------------------------------------------------------------

    async def reserve(self, worker_id: str, max_jobs: int, lease: float,
                      default_max_retries: int | None = None, *,
                      min_priority: int | None = None) -> Reservation:
        """Lease up to ``max_jobs`` ready jobs to ``worker_id`` for ``lease`` seconds
        (only jobs of at least ``min_priority`` when it is given)."""
        script, keys, args = self._reserve_call(worker_id, max_jobs, lease, default_max_retries,
                                                min_priority)
        with self._errors:
            reply = await script(keys=keys, args=args)
        return self._reservation(reply, worker_id)

    def _reserve_call(self, worker_id: str, max_jobs: int, lease: float,
                      default_max_retries: int | None, min_priority: int | None = None
                      ) -> ScriptCall:
        k = self.keys
        retries = self.config.default_max_retries if default_max_retries is None \
            else default_max_retries
        return ScriptCall(
            self._scripts.reserve,
            [k.job_prefix, k.queued, k.scheduled, k.active, k.dead, k.sequence, k.notify,
             k.stats, k.all_jobs, k.cancelled],
            [max_jobs, _ms(lease), worker_id, retries, self.config.dead_letter_cap,
             "" if min_priority is None else min_priority, *RESERVE_FIELDS],
        )

    def _reservation(self, reply: Sequence[Any], worker_id: str) -> Reservation:
        due_ms, now_ms, rows = ReserveReply.parse(reply)
        queue = self.queue
        jobs = [Job.reserved(row, now_ms=now_ms, worker_id=worker_id, queue=queue)
                for row in rows]
        return Reservation(jobs, None if due_ms is None else due_ms / 1000)

    async def complete_and_reserve(
        self, done: Sequence[tuple[str, int, Any]], worker_id: str, max_jobs: int, lease: float,
        default_max_retries: int | None = None, *, min_priority: int | None = None,
    ) -> tuple[list[bool], Reservation]:
        """Complete finished jobs and reserve new ones in ONE round trip (a pipeline)."""
        if not done:
            return [], await self.reserve(worker_id, max_jobs, lease, default_max_retries,
                                          min_priority=min_priority)
        oks, reply = await self._pipelined([
            self._complete_call(done),
            self._reserve_call(worker_id, max_jobs, lease, default_max_retries, min_priority),
        ])
        return [bool(x) for x in oks], self._reservation(reply, worker_id)

    async def _pipelined(self, calls: Sequence[ScriptCall]) -> list[Any]:
        return await run_pipelined(self.client, calls, loaded=self._loaded, errors=self._errors)

    async def wait_for_work(self, timeout: float) -> bool:
        """Block until a job may be ready or ``timeout`` seconds pass; True if woken."""
        return await self._block(self.client, timeout)

    def waiter(self) -> Waiter:
        """A private connection for one worker to block on (see :class:`Waiter`)."""
        return Waiter(self)

    async def _block(self, client: aioredis.Redis, timeout: float) -> bool:
        # Block at most MAX_BLOCK per call: below the socket timeout, and short enough that a
        # stopping worker need not rely on cancelling a blocked read (redis-py can swallow a
        # cancellation that lands while the command is being sent).
        timeout = min(timeout, MAX_BLOCK)
        with self._errors:
            got = await cast("Awaitable[list[str] | None]",
                             client.blpop([self.keys.notify], timeout=max(timeout, 0.001)))
        return got is not None

    async def complete(self, job_id: str, token: int, result: Any = None) -> None:
        """Mark one job completed; raises LeaseLostError if another worker owns it now."""
        if not (await self.complete_many([(job_id, token, result)]))[0]:
            raise LeaseLostError(
                f"job {job_id!r}: completion rejected, the lease (token {token}) was taken over"
            )

    async def complete_many(self, done: Sequence[tuple[str, int, Any]]) -> list[bool]:
        """Complete a batch of jobs in one round trip; False where fencing rejected it."""
        if not done:
            return []
        script, keys, args = self._complete_call(done)
        with self._errors:
            reply = await script(keys=keys, args=args)
        return [bool(x) for x in reply]

    def _complete_call(self, done: Sequence[tuple[str, int, Any]]) -> ScriptCall:
        k = self.keys
        args: list[Any] = [_ms(self.config.completed_retention), len(done)]
        for job_id, token, result in done:
            args.extend((job_id, token, "null" if result is None else _encode_result(result)))
        return ScriptCall(self._scripts.complete,
                          [k.job_prefix, k.active, k.completed, k.all_jobs, k.stats], args)

    async def fail(self, job_id: str, token: int, failure: Failure, *,
                   default_max_retries: int | None = None) -> JobStatus:
        """Record a failed attempt as ``failure`` says (see FailureKind); returns the new status
        (retrying, dead, failed, cancelled)."""
        k = self.keys
        retries = self.config.default_max_retries if default_max_retries is None \
            else default_max_retries
        with self._errors:
            status = await self._scripts.fail(
                keys=[k.job_prefix, k.active, k.scheduled, k.failed, k.dead, k.cancelled,
                      k.stats, k.all_jobs],
                args=[job_id, token, failure.error.to_json(), failure.kind.value,
                      _ms(failure.delay), retries,
                      self.config.dead_letter_cap, _ms(self.config.failed_retention)],
            )
        if not status:
            raise LeaseLostError(
                f"job {job_id!r}: failure report rejected, the lease (token {token}) was taken over"
            )
        return JobStatus(status)

    async def update_progress(self, job_id: str, token: int, progress: int, message: str,
                              lease: float) -> bool:
        """Store progress (never backwards) and renew the lease; True if cancel was asked."""
        progress = max(0, min(100, int(progress)))
        with self._errors:
            reply = await self._scripts.progress(
                keys=[self.keys.job(job_id), self.keys.active],
                args=[job_id, token, progress, message, _ms(lease)],
            )
        if reply < 0:
            raise LeaseLostError(f"job {job_id!r}: progress rejected, another worker owns it")
        return bool(reply == 1)

    async def owns(self, job_id: str, token: int) -> bool:
        """Whether the attempt holding fencing token ``token`` still owns the job (it is
        processing under that token). One atomic read: writers outside this queue's keys (the
        document registry, the vector store) call it right before each write."""
        with self._errors:
            current, status = await cast("Awaitable[list[str | None]]", self.client.hmget(
                self.keys.job(job_id), ["token", "status"]))
        return current == str(token) and status == JobStatus.PROCESSING.value

    async def heartbeat(self, worker_name: str, stats: Mapping[str, Any], ttl: float,
                        lease: float, jobs: Sequence[tuple[str, int]]
                        ) -> tuple[list[str], list[str]]:
        """Renew leases and publish worker stats; returns (lost ids, cancel-requested ids)."""
        k = self.keys
        args: list[Any] = [_ms(lease), worker_name, json.dumps(stats), _ms(ttl)]
        for job_id, token in jobs:
            args.extend((job_id, token))
        with self._errors:
            lost, cancel = await self._scripts.heartbeat(
                keys=[k.job_prefix, k.active, k.workers, k.worker(worker_name)], args=args
            )
        return list(lost), list(cancel)

    async def publish_supervisor(self, name: str, status: Mapping[str, Any], ttl: float) -> None:
        """Publish a process supervisor's state (ttl 0 removes it): the heartbeat script with
        the supervisor registry's keys and no leases to renew."""
        k = self.keys
        with self._errors:
            await self._scripts.heartbeat(
                keys=[k.job_prefix, k.active, k.supervisors, k.supervisor(name)],
                args=[0, name, json.dumps(status), _ms(ttl)],
            )

    async def release(self, jobs: Sequence[tuple[str, int]]) -> int:
        """Hand reserved jobs back to the queue without counting an attempt (shutdown)."""
        if not jobs:
            return 0
        k = self.keys
        args: list[Any] = [self.config.notify_cap]
        for job_id, token in jobs:
            args.extend((job_id, token))
        with self._errors:
            return int(await self._scripts.release(
                keys=[k.job_prefix, k.active, k.queued, k.notify], args=args
            ))

    # -- managing ---------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> str:
        """Cancel a job: 'cancelled' if it was waiting, 'requested' if it is running."""
        validate_job_id(job_id)
        k = self.keys
        with self._errors:
            reply = await self._scripts.cancel(
                keys=[k.job(job_id), k.pending, k.queued, k.scheduled, k.cancelled, k.notify],
                args=[job_id],
            )
        if not reply:
            raise JobNotFoundError(f"no job {job_id!r} in queue {self.queue!r}")
        if reply not in ("cancelled", "requested"):
            raise InvalidStateError(f"job {job_id!r} is {reply}; nothing to cancel")
        return str(reply)

    async def requeue(self, job_id: str) -> None:
        """Queue a failed, dead, cancelled or pending job again with a fresh retry budget."""
        validate_job_id(job_id)
        k = self.keys
        with self._errors:
            previous = await self._scripts.requeue(
                keys=[k.job(job_id), k.failed, k.dead, k.cancelled, k.pending, k.queued,
                      k.sequence, k.notify],
                args=[job_id, self.config.notify_cap],
            )
        if not previous:
            raise JobNotFoundError(f"no job {job_id!r} in queue {self.queue!r}")
        if previous not in ("failed", "dead", "cancelled", "pending"):
            raise InvalidStateError(
                f"job {job_id!r} is {previous}; only failed, dead, cancelled or pending jobs "
                "can be requeued"
            )

    async def update_status(self, job_id: str, status: JobStatus) -> None:
        """Move a job by hand: CANCELLED cancels it, QUEUED requeues it. Others are refused,
        because the remaining transitions belong to the worker that holds the lease."""
        if status == JobStatus.CANCELLED:
            await self.cancel(job_id)
        elif status == JobStatus.QUEUED:
            await self.requeue(job_id)
        else:
            raise InvalidStateError(
                f"cannot set job {job_id!r} to {status.value} by hand; only cancelled or queued"
            )

    async def delete_job(self, job_id: str) -> bool:
        """Delete a job that is not running; False if it did not exist."""
        validate_job_id(job_id)
        k = self.keys
        with self._errors:
            reply = await self._scripts.delete(
                keys=[k.job(job_id), *k.collections(), k.all_jobs, k.notify], args=[job_id]
            )
        if reply < 0:
            raise InvalidStateError(f"job {job_id!r} is running; cancel it before deleting")
        return bool(reply)

    async def purge_dead_letters(self) -> int:
        """Delete every job in the dead-letter queue; returns how many."""
        total = 0
        while ids := await self._range(self.keys.dead, 0, 499):
            for job_id in ids:
                total += int(await self.delete_job(job_id))
        return total

    async def _range(self, key: str, start: int, stop: int) -> list[str]:
        with self._errors:
            return cast("list[str]", await self.client.zrange(key, start, stop))

    async def cleanup(self, older_than: float, *, include_dead: bool = False) -> int:
        """Delete completed, failed and cancelled jobs that finished over ``older_than`` s ago."""
        k = self.keys
        total = 0
        while True:
            with self._errors:
                n = int(await self._scripts.cleanup(
                    keys=[k.job_prefix, k.completed, k.failed, k.cancelled, k.dead, k.all_jobs],
                    args=[_ms(older_than), "1" if include_dead else "0"],
                ))
            total += n
            if n == 0:
                return total


def _by_type(totals: Mapping[str, str], prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: int(v) for k, v in totals.items() if k.startswith(prefix)}

