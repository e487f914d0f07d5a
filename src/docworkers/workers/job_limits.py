"""Cluster-wide limits per job type: job starts per second and jobs running at once.

``WorkerConfig(rate_limit=2.0, max_running=4)`` lets at most 2 jobs of each type this worker
runs start per second (bursts of up to one second's worth) and at most 4 run at once, summed
over every worker of the cluster with the same setting, wherever it runs: the permits live in
Redis (:mod:`docworkers.queue.rate_limit`), one rate bucket and one set of leased slots per
queue and job type.

:class:`JobLimitsHook` asks for a permit after the worker reserved a job and before
``process()``. A refused job is deferred (back to the queue for when a permit is expected,
without using an attempt), so a worker slot never sits waiting on a limit for long. The running
slot is a lease that is renewed while the job runs and given back when it ends, however it
ends; a worker that dies gives it back when the lease runs out. Without limits a worker has no
such hook at all and pays nothing per job.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from docworkers.errors import ConfigurationError, RateLimitedError
from docworkers.queue.job import Job
from docworkers.queue.rate_limit import RedisConcurrencyLimiter, RedisRateLimiter
from docworkers.queue.repository import RedisJobRepository
from docworkers.workers.config import WorkerConfig
from docworkers.workers.hooks import JobRefused, WorkerHook

if TYPE_CHECKING:
    from docworkers.workers.context import JobContext

__all__ = ["JobLimits", "JobLimitsHook", "job_limit_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def job_limit_name(queue: str, job_type: str) -> str:
    """The limiter name of ``job_type`` on ``queue`` (characters a key name cannot take
    become ``_``)."""
    return f"jobs:{queue}:{_UNSAFE.sub('_', job_type)}"[:128]


class JobLimits:
    """The per-job-type limits of one worker; see the module docstring."""

    def __init__(self, client: Redis, *, queue: str, rate_limit: float | None,
                 max_running: int | None, lease: float, max_wait: float,
                 namespace: str = "dw") -> None:
        self.queue = queue
        self.rate_limit = rate_limit
        self.max_running = max_running
        self.lease = lease
        self.max_wait = max_wait  # a start this close is waited for; a later one is deferred
        self.namespace = namespace
        self._client = client
        self._rates: dict[str, RedisRateLimiter] = {}
        self._slots: dict[str, RedisConcurrencyLimiter] = {}

    @classmethod
    def for_worker(cls, config: WorkerConfig, repo: object) -> JobLimits | None:
        """The limits of ``config`` on ``repo``'s Redis; None when none is configured."""
        if config.rate_limit is None and config.max_running is None:
            return None
        if not isinstance(repo, RedisJobRepository):
            raise ConfigurationError(
                "rate_limit" if config.rate_limit is not None else "max_running",
                "job limits are kept in Redis: the worker needs a RedisJobRepository")
        return cls(repo.client, queue=repo.queue,
                   rate_limit=config.rate_limit, max_running=config.max_running,
                   lease=config.lease_timeout, max_wait=config.poll_interval,
                   namespace=repo.config.namespace)

    async def admit(self, job_type: str) -> contextlib.AsyncExitStack:
        """A permit to start one job of ``job_type`` now; ``await permit.aclose()`` when the
        job ends. Raises RateLimitedError (with ``retry_after``) when a limit refuses."""
        permit = contextlib.AsyncExitStack()
        try:
            if self.max_running is not None:
                try:
                    await permit.enter_async_context(self._slots_of(job_type).hold(timeout=0))
                except RateLimitedError as exc:
                    # Slots free as soon as a running job ends, long before the first lease
                    # would run out: look again soon, at a jittered moment.
                    retry = min(exc.retry_after, self.max_wait) * random.uniform(0.5, 1.0)
                    raise RateLimitedError(exc.limiter, max(retry, 0.01), exc.detail) from exc
            if self.rate_limit is not None:
                await self._rate_of(job_type).acquire(timeout=self.max_wait)
        except BaseException:
            await permit.aclose()
            raise
        return permit

    def _rate_of(self, job_type: str) -> RedisRateLimiter:
        limiter = self._rates.get(job_type)
        if limiter is None:
            assert self.rate_limit is not None
            limiter = RedisRateLimiter(self._client, job_limit_name(self.queue, job_type),
                                       rate=self.rate_limit,
                                       burst=max(1, math.floor(self.rate_limit)),
                                       namespace=self.namespace)
            self._rates[job_type] = limiter
        return limiter

    def _slots_of(self, job_type: str) -> RedisConcurrencyLimiter:
        limiter = self._slots.get(job_type)
        if limiter is None:
            assert self.max_running is not None
            limiter = RedisConcurrencyLimiter(self._client, job_limit_name(self.queue, job_type),
                                              self.max_running, self.lease,
                                              namespace=self.namespace)
            self._slots[job_type] = limiter
        return limiter


class JobLimitsHook(WorkerHook):
    """:class:`JobLimits` around each job: a permit before ``process()``, given back after it
    however it ended; a refused start is a :class:`~docworkers.workers.hooks.JobRefused`."""

    def __init__(self, limits: JobLimits) -> None:
        self.limits = limits
        self._permits: dict[tuple[str, int], contextlib.AsyncExitStack] = {}

    async def before_job(self, job: Job, ctx: JobContext) -> None:
        try:
            self._permits[job.id, job.token] = await self.limits.admit(job.type)
        except RateLimitedError as exc:
            raise JobRefused(exc, exc.retry_after) from exc

    async def after_job(self, job: Job, ctx: JobContext, result: Any,
                        error: BaseException | None) -> None:
        permit = self._permits.pop((job.id, job.token), None)
        if permit is not None:
            await permit.aclose()
