"""The Redis job repository: every state change is one Lua script, one round trip.

Round trips: one to enqueue (a ready job with a generated id is one RPUSH on the intake list,
see intake.py; a bulk enqueue sends 500 jobs per script call, all pipelined; concurrent single
enqueues share calls, see coalescer.py), one per reserved batch, with the
completions of finished jobs in the same pipeline; an idle worker's wait and its next
reservation also share one (waiter.py). Reads (get, list, stats) are pipelined.

:meth:`RedisJobRepository.restricted_to` gives a view of a queue that reserves only given job
ids: a client on a shared queue runs its own jobs on it and never takes anyone else's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Self, cast

import redis.asyncio as aioredis

from docworkers.errors import InvalidStateError, LeaseLostError
from docworkers.queue.admin import QueueAdmin
from docworkers.queue.coalescer import Coalescer
from docworkers.queue.intake import IntakeLane, intake_entry
from docworkers.queue.job import Job, JobStatus, ms_time
from docworkers.queue.producer_calls import (
    ENQUEUE_BATCH,
    cancel_keys,
    cancel_outcome,
    enqueue_batches,
    enqueue_keys,
    job_not_found,
)
from docworkers.queue.protocol import Failure, Reservation
from docworkers.queue.reads import JobReads
from docworkers.queue.redis.clients import async_client
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import QueueKeys, validate_job_id
from docworkers.queue.redis.scripts import QueueScripts, ReserveReply, ScriptCall, run_pipelined
from docworkers.queue.repository_config import RepositoryConfig as RepositoryConfig  # re-export
from docworkers.queue.spec import JobSpec
from docworkers.queue.waiter import MAX_BLOCK, Waiter

_encode_result = json.JSONEncoder(separators=(",", ":")).encode


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))


class RedisJobRepository(JobReads, QueueAdmin):
    """Jobs of one queue in Redis. Safe to share between tasks of one event loop.

    The reads (find, list, stats, dead letters, workers) are in :class:`JobReads`; pausing,
    running a waiting job now and bulk actions on dead jobs in :class:`QueueAdmin`.
    """

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
        self._intake = IntakeLane(client, self._errors, self.config.reply_spin)
        self._intake_coalescer = Coalescer(self._push_intake, limit=ENQUEUE_BATCH)

    @classmethod
    def from_url(cls, url: str, config: RepositoryConfig | None = None, **options: Any) -> Self:
        """Connect lazily to ``url`` (``redis://``, ``rediss://`` or ``unix://``) with the
        settings of :mod:`docworkers.queue.redis.clients`; ``options`` override redis-py's."""
        return cls(async_client(url, **options), config, url=url)

    def for_queue(self, queue: str) -> RedisJobRepository:
        """The repository of ``queue`` with this one's settings and connection pool: one pool
        serves every queue of a process. Close only the repository that made the pool."""
        return RedisJobRepository(self.client, replace(self.config, queue=queue), url=self.url)

    # -- connection -------------------------------------------------------------------------

    async def close(self) -> None:
        await self._intake.close()
        await self.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- creating (the scripts' keys and arguments are built in producer_calls) -------------

    async def enqueue(self, job_type: str, payload: Mapping[str, Any] | None = None,
                      **options: Any) -> str:
        """Enqueue one job in one round trip; returns its id. See :class:`JobSpec`.

        A ready job with a generated id is one RPUSH on the intake list (intake.py); others
        run enqueue.lua. Concurrent calls share commands (see :class:`Coalescer`).
        """
        routed = intake_entry(job_type, payload or {}, options)
        if isinstance(routed, JobSpec):
            job_args = routed.script_args()
            await self._enqueue_coalescer.submit(job_args)
            return job_args[0]
        job_id, entry = routed
        await self._intake_coalescer.submit(entry)
        return job_id

    async def _push_intake(self, entries: Sequence[str]) -> None:
        await self._intake.push(self.keys.intake, entries)

    async def create_job(self, job_type: str, payload: Mapping[str, Any] | None = None,
                         **options: Any) -> str:
        """Create a ``pending`` job that runs only once :meth:`requeue` queues it."""
        spec = JobSpec(job_type, payload or {}, **options)
        args = spec.script_args(pending=True)
        with self._errors:
            await self._scripts.enqueue(keys=enqueue_keys(self.keys),
                                        args=enqueue_batches([args], self.config.notify_cap)[0])
        return args[0]

    async def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]:
        """Enqueue many jobs, 500 per script call, all calls in one pipelined round trip."""
        encoded = [spec.script_args() for spec in specs]
        await self._enqueue_encoded(encoded)
        return [job_args[0] for job_args in encoded]

    async def _enqueue_encoded(self, encoded: Sequence[tuple[str, ...]]) -> None:
        if not encoded:
            return
        keys = enqueue_keys(self.keys)
        calls = [ScriptCall(self._scripts.enqueue, keys, args)
                 for args in enqueue_batches(encoded, self.config.notify_cap)]
        if len(calls) == 1:
            with self._errors:
                await self._scripts.enqueue(keys=keys, args=calls[0].args)
        else:
            await self._pipelined(calls)

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
        only = self._reservable()
        if only is not None and not only:
            # Reserve nothing ('' would mean any job), but still run the script: it promotes
            # due jobs and recovers expired leases for the whole queue.
            max_jobs = 0
        return ScriptCall(
            self._scripts.reserve,
            [k.job_prefix, k.queued, k.scheduled, k.active, k.dead, k.sequence, k.intake,
             k.stats, k.all_jobs, k.cancelled, k.events_prefix, k.paused, k.history_prefix,
             *k.absorb_keys()],
            [max_jobs, _ms(lease), worker_id, retries, self.config.dead_letter_cap,
             "" if min_priority is None else min_priority,
             "" if only is None else " ".join(only)],
        )

    def _reservable(self) -> Sequence[str] | None:
        """The only job ids reservations may take; None: any job."""
        return None

    def restricted_to(self, job_ids: Iterable[str]) -> RestrictedJobRepository:
        """A view of this queue, on the same connection pool, whose reservations take only
        ``job_ids`` (see :class:`RestrictedJobRepository`)."""
        return RestrictedJobRepository(self.client, self.config, url=self.url, job_ids=job_ids)

    def _reservation(self, reply: Sequence[Any], worker_id: str) -> Reservation:
        due_ms, now_ms, rows = ReserveReply.parse(reply)
        queue = self.queue
        now = ms_time(now_ms) if rows else None
        jobs = [Job.reserved(row, now_ms=now_ms, worker_id=worker_id, queue=queue, now=now)
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
        with self._errors:  # what it takes stays in the claimed list for the next absorb
            got = await cast("Awaitable[str | None]", client.execute_command(  # type: ignore[no-untyped-call]
                "BLMOVE", self.keys.intake, self.keys.claimed, "LEFT", "RIGHT",
                max(timeout, 0.001)))
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
                          [k.job_prefix, k.active, k.completed, k.all_jobs, k.stats,
                           k.events_prefix, k.history_prefix], args)

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
                      k.stats, k.all_jobs, k.events_prefix, k.history_prefix],
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
                keys=[self.keys.job(job_id), self.keys.active, self.keys.events(job_id)],
                args=[job_id, token, progress, message, _ms(lease)],
            )
        if reply < 0:
            raise LeaseLostError(f"job {job_id!r}: progress rejected, another worker owns it")
        return bool(reply == 1)

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
                keys=[k.job_prefix, k.active, k.queued, k.intake, k.events_prefix], args=args
            ))

    # -- managing ---------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> str:
        """Cancel a job: 'cancelled' if it was waiting, 'requested' if it is running."""
        keys = cancel_keys(self.keys, job_id)
        with self._errors:
            reply = await self._scripts.cancel(keys=keys, args=[job_id])
        return cancel_outcome(reply, job_id, self.queue)

    async def requeue(self, job_id: str) -> None:
        """Queue a failed, dead, cancelled or pending job again with a fresh retry budget."""
        validate_job_id(job_id)
        k = self.keys
        with self._errors:
            previous = await self._scripts.requeue(
                keys=[k.job(job_id), k.failed, k.dead, k.cancelled, k.pending, k.queued,
                      k.sequence, k.intake, k.events(job_id), *k.absorb_keys()],
                args=[job_id, self.config.notify_cap],
            )
        if not previous:
            raise job_not_found(job_id, self.queue)
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
                keys=[k.job(job_id), *k.collections(), k.all_jobs, k.events(job_id),
                      *k.absorb_keys()], args=[job_id]
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

    async def cleanup(self, older_than: float, *, include_dead: bool = False) -> int:
        """Delete completed, failed and cancelled jobs that finished over ``older_than`` s ago."""
        k = self.keys
        total = 0
        while True:
            with self._errors:
                n = int(await self._scripts.cleanup(
                    keys=[k.job_prefix, k.completed, k.failed, k.cancelled, k.dead, k.all_jobs,
                          k.events_prefix],
                    args=[_ms(older_than), "1" if include_dead else "0"],
                ))
            total += n
            if n == 0:
                return total


class RestrictedJobRepository(RedisJobRepository):
    """A queue's repository that reserves only the jobs it is allowed, so a worker on it runs
    one client's jobs and leaves every other job on a shared queue to the other workers.

    Everything but reservations is the queue's own: leases of other jobs that ran out are still
    recovered when it reserves, and its worker's heartbeat is published with the others, marked
    ``restricted`` so that clients looking for a worker that serves the queue pass it over.
    It shares the pool of the repository that made it: close that one, not this.
    """

    def __init__(self, client: aioredis.Redis, config: RepositoryConfig | None = None, *,
                 url: str = "redis", job_ids: Iterable[str] = ()) -> None:
        super().__init__(client, config, url=url)
        self._allowed: dict[str, None] = {}  # ordered, for a stable script argument
        self.allow(job_ids)

    @property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(self._allowed)

    def allow(self, job_ids: Iterable[str]) -> None:
        """Let reservations take ``job_ids`` too (e.g. the children of an own job)."""
        for job_id in job_ids:
            self._allowed[validate_job_id(job_id)] = None

    def disallow(self, job_ids: Iterable[str]) -> None:
        """Stop taking ``job_ids`` (e.g. once finished: every reservation looks each allowed
        id up, so a long run keeps the list to the jobs that may still run)."""
        for job_id in job_ids:
            self._allowed.pop(job_id, None)

    def _reservable(self) -> Sequence[str]:
        return tuple(self._allowed)

    async def heartbeat(self, worker_name: str, stats: Mapping[str, Any], ttl: float,
                        lease: float, jobs: Sequence[tuple[str, int]]
                        ) -> tuple[list[str], list[str]]:
        return await super().heartbeat(worker_name, {**stats, "restricted": True}, ttl, lease,
                                       jobs)


def serving_workers(workers: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The workers, as listed by :meth:`JobReads.list_workers`, that take any job of their
    queue: running and not restricted to some client's jobs."""
    return [w for w in workers if not w.get("restricted") and w.get("is_running", True)]
