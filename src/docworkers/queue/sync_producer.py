"""Enqueue, look up and cancel jobs from synchronous code: :class:`SyncJobProducer`.

Many producers have no event loop (a Django or Flask view, a script, a thread pool), and starting
one per call to reach :class:`~docworkers.queue.repository.RedisJobRepository` costs more than
the enqueue itself. This producer does the same through a synchronous redis-py client: it runs
the same Lua scripts with the same keys and arguments (built in
:mod:`docworkers.queue.producer_calls`) and validates jobs with the same :class:`JobSpec`, so a
worker cannot tell which of the two made a job (a ready job with a generated id is one RPUSH on
the intake list, packed by :mod:`docworkers.queue.intake`, as the async repository does). No
asyncio code runs on its path: it works in a
plain thread, and inside a running loop's thread it is plain blocking code (there, prefer the
async repository). As :mod:`docworkers.queue.rate_limit_sync` is to the async limiters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Self, TypedDict, Unpack, cast

import redis
from redis.exceptions import NoScriptError

from docworkers.queue.intake import SyncIntakeLane, intake_entry
from docworkers.queue.job import Job
from docworkers.queue.producer_calls import (
    cancel_keys,
    cancel_outcome,
    enqueue_batches,
    enqueue_keys,
    job_not_found,
)
from docworkers.queue.redis.clients import sync_client
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import QueueKeys, validate_job_id
from docworkers.queue.redis.scripts import register
from docworkers.queue.repository_config import RepositoryConfig
from docworkers.queue.spec import JobSpec

__all__ = ["EnqueueOptions", "SyncJobProducer"]


class EnqueueOptions(TypedDict, total=False):
    """The keyword options of :meth:`SyncJobProducer.enqueue`: :class:`JobSpec`'s fields
    after type and payload, with its defaults and checks (typed here so a misspelt option is a
    type error, and at run time JobSpec's TypeError)."""

    priority: int
    delay: float
    run_at: datetime | None
    job_id: str | None
    max_retries: int | None
    user_id: str | None
    tags: Sequence[str]


class SyncJobProducer:
    """The producer's side of one queue for synchronous code: ``enqueue``, ``enqueue_many``,
    ``get``/``find`` and ``cancel``, with the semantics of RedisJobRepository's methods of those
    names. Thread-safe (redis-py's client keeps a connection pool): one per process is enough.
    """

    def __init__(self, client: redis.Redis, config: RepositoryConfig | None = None, *,
                 url: str = "redis") -> None:
        self.client = client
        self.config = config or RepositoryConfig()
        self.keys = QueueKeys(self.config.queue, self.config.namespace)
        self.url = url
        self._errors = RedisErrors(url=url)  # ``with self._errors:`` around every command
        # Bound to the client, called by SHA, loaded again on NOSCRIPT (no round trip here).
        self._enqueue = register(client, "enqueue")
        self._cancel = register(client, "cancel")
        self._absorb = register(client, "absorb")
        self._intake = SyncIntakeLane(client, self._errors, self.config.reply_spin)

    @classmethod
    def from_url(cls, url: str, config: RepositoryConfig | None = None, **options: Any) -> Self:
        """Connect lazily to ``url`` with the settings of :mod:`docworkers.queue.redis.clients`
        (the async repository's timeouts and retries); ``options`` override redis-py's."""
        return cls(sync_client(url, **options), config, url=url)

    def for_queue(self, queue: str) -> SyncJobProducer:
        """The producer of ``queue`` with this one's settings and connection pool. Close only
        the producer that made the pool."""
        return SyncJobProducer(self.client, replace(self.config, queue=queue), url=self.url)

    @property
    def queue(self) -> str:
        return self.config.queue

    # -- connection -------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that Redis answers (RepositoryConnectionError if not)."""
        with self._errors:
            self.client.ping()

    def close(self) -> None:
        """Close the connection pool; closing again does nothing."""
        self._intake.close()
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- creating ---------------------------------------------------------------------------

    def enqueue(self, job_type: str, payload: Mapping[str, Any] | None = None,
                **options: Unpack[EnqueueOptions]) -> str:
        """Enqueue one job in one round trip; returns its id. A given ``job_id`` makes it
        idempotent: a job of that id that already exists is left as it is. A ready job with a
        generated id is one RPUSH on the intake list (a retried push stays one job)."""
        routed = intake_entry(job_type, payload or {}, options)
        if isinstance(routed, JobSpec):
            job_args = routed.script_args()
            self._store([job_args])
            return job_args[0]
        job_id, entry = routed
        self._intake.push(self.keys.intake, [entry])
        return job_id

    def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]:
        """Enqueue many jobs, 500 per script call, the calls in one pipeline; their ids."""
        encoded = [spec.script_args() for spec in specs]
        self._store(encoded)
        return [job_args[0] for job_args in encoded]

    def _store(self, encoded: Sequence[tuple[str, ...]]) -> None:
        if not encoded:
            return
        keys = enqueue_keys(self.keys)
        batches = enqueue_batches(encoded, self.config.notify_cap)
        with self._errors:
            if len(batches) == 1:
                self._enqueue(keys=keys, args=batches[0])
                return
            # redis-py's pipeline checks that its scripts are loaded (SCRIPT EXISTS) before
            # sending them: one more round trip, paid only past 500 jobs.
            pipe = self.client.pipeline(transaction=False)
            for args in batches:
                self._enqueue(keys=keys, args=args, client=pipe)
            pipe.execute()

    # -- reading ----------------------------------------------------------------------------

    def find(self, job_id: str) -> Job | None:
        """The job, or None if there is none of that id (or it was cleaned up)."""
        validate_job_id(job_id)
        keys, key = self.keys.absorb_keys(), self.keys.job(job_id)
        with self._errors:
            # absorb.lua (the intake's jobs first) and the read in one round trip, as the
            # asyncio repository reads (queue/reads.py); NOSCRIPT: the script alone, then again
            # (errors raise: a cluster pipeline retries a connection a failover closed)
            pipe = self.client.pipeline(transaction=False)
            pipe.execute_command("EVALSHA", self._absorb.sha, len(keys), *keys)  # type: ignore[no-untyped-call]
            pipe.hgetall(key)
            try:
                data = pipe.execute()[1]
            except NoScriptError:
                self._absorb(keys=keys, args=[])
                data = self.client.hgetall(key)
        return Job.from_hash(cast("dict[str, str]", data), self.queue) if data else None

    def get(self, job_id: str) -> Job:
        """The job; JobNotFoundError if there is none of that id."""
        job = self.find(job_id)
        if job is None:
            raise job_not_found(job_id, self.queue)
        return job

    # -- managing ---------------------------------------------------------------------------

    def cancel(self, job_id: str) -> str:
        """Cancel a job: 'cancelled' if it was waiting (it never runs), 'requested' if it is
        running (it stops at its next progress call or heartbeat); JobNotFoundError if there
        is no such job, InvalidStateError if it has already finished."""
        keys = cancel_keys(self.keys, job_id)
        with self._errors:
            reply = cast("str", self._cancel(keys=keys, args=[job_id]))
        return cancel_outcome(reply, job_id, self.queue)
