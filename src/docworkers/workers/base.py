"""BaseWorker: the fetch loop, concurrency, retries, recovery, heartbeats and clean stop.

A subclass overrides :meth:`BaseWorker.process`. Three background tasks run while the worker
is up: the fetch loop (reserve jobs when slots are free, block on Redis when idle), the acker
(completes finished jobs in batches, piggy-backed on the next reservation when possible) and the
heartbeat (renews every lease and publishes stats in one script call). Each loop logs errors and
carries on; only an unrecovered handler exception (enable_recovery=False) stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from docworkers.errors import (
    DocworkersError,
    JobCancelledError,
    JobError,
    JobTimeoutError,
    LeaseLostError,
    RateLimitedError,
    RepositoryConnectionError,
    RepositoryError,
    UnknownJobTypeError,
    error_code,
)
from docworkers.queue.job import Job
from docworkers.queue.job import JobError as JobFailure
from docworkers.queue.protocol import JobRepository, Waiter
from docworkers.queue.repository import Reservation
from docworkers.queue.waiter import MAX_BLOCK
from docworkers.workers.autoscale import (
    ConcurrencyController,
    LatencyTracker,
    ScalingSignals,
    resident_memory_mb,
)
from docworkers.workers.backoff import backoff_delay
from docworkers.workers.circuit_breaker import breaker_states
from docworkers.workers.config import WorkerConfig
from docworkers.workers.context import JobContext
from docworkers.workers.job_limits import JobLimits
from docworkers.workers.logs import worker_logger
from docworkers.workers.service_guard import refused_calls
from docworkers.workers.stats import StatsRecorder, WorkerStats

_T = TypeVar("_T")


class _Refused(Exception):
    """A job-type limit refused to start a job; never escapes BaseWorker."""

    def __init__(self, error: RateLimitedError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True)
class _Running:
    job: Job
    ctx: JobContext
    task: asyncio.Task[None]
    started: float


@dataclass(slots=True)
class _Ack:
    job: Job
    result: Any
    duration: float


class BaseWorker(ABC):
    """Runs jobs from one queue with bounded concurrency. Override :meth:`process`."""

    job_types: ClassVar[frozenset[str] | None] = None  # None: accept every type

    def __init__(self, config: WorkerConfig, *, job_repo: JobRepository,
                 logger: logging.Logger | None = None) -> None:
        self.config = config
        self.repo = job_repo
        self.worker_id = f"{config.worker_name}:{socket.gethostname()}:{os.getpid()}:" \
                         f"{uuid.uuid4().hex[:6]}"
        self._base_logger = logger or logging.getLogger("docworkers.worker")
        self._base_logger.setLevel(config.log_level.upper())
        self.log = worker_logger(config.worker_name, base=self._base_logger)
        self._stats = StatsRecorder()
        self._running = False
        self._stopping = False
        self._inflight: dict[str, _Running] = {}
        self._in_handler: set[str] = set()  # jobs in process(): a lost lease cancels them
        self._acks: list[_Ack] = []
        self._ack_ready = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._closing = asyncio.Event()
        self._fatal: BaseException | None = None
        self._fetch_idle = False  # the fetch loop waits, with no round trip in flight
        self._fetch_blocked = False  # the fetch loop is in a wait-and-reserve round trip
        self._stop_lock = asyncio.Lock()
        self._stopper: asyncio.Task[None] | None = None
        self._waiter: Waiter
        # Dynamic concurrency (autoscale.py): the limit the fetch loop obeys right now.
        self._limit = config.min_concurrency or config.concurrency
        self._latency = LatencyTracker()
        self._scaling = "autoscaling" if config.autoscaling else "fixed"
        self._rss_mb = 0.0
        self._controller = ConcurrencyController(
            config.min_concurrency or config.concurrency, config.concurrency,
            latency_tolerance=config.latency_tolerance, memory_limit_mb=config.memory_limit_mb,
        )
        self._job_limits = JobLimits.for_worker(config, job_repo)  # None: no limits, no cost

    # -- the Worker protocol ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.worker_name

    def is_running(self) -> bool:
        return self._running

    def stats(self) -> WorkerStats:
        s = self._stats
        return WorkerStats(
            worker_name=self.name,
            jobs_processed=s.processed,
            jobs_succeeded=s.succeeded,
            jobs_failed=s.failed,
            average_process_time=s.average,
            last_job_time=s.last_job_time,
            uptime=s.uptime if self._running else 0.0,
            is_running=self._running,
            in_flight=len(self._inflight),
            concurrency=self._limit,
            queue=getattr(self.repo, "queue", ""),
            pid=os.getpid(),
            host=socket.gethostname(),
            min_concurrency=self.config.min_concurrency or self.config.concurrency,
            max_concurrency=self.config.concurrency,
            scaling=self._scaling,
            concurrency_changes=s.concurrency_changes,
            latency=self._latency.latency or 0.0,
            rss_mb=round(self._rss_mb, 1),
            breakers=breaker_states(),
            limited=refused_calls(),
        )

    @abstractmethod
    async def process(self, job: Job, ctx: JobContext) -> Any:
        """Run one job attempt and return its JSON-serialisable result."""

    async def start(self) -> None:
        """Check Redis, then start the background loops. Returns once running."""
        if self._running:
            return
        # A clear RepositoryConnectionError naming the URL if Redis is down (the CLI retries
        # it, see workers/startup.py); check_server also pings, and warns about eviction.
        check = getattr(self.repo, "check_server", None)
        await (check() if check is not None else self.repo.ping())
        self._waiter = self.repo.waiter()
        await self._waiter.connect()
        self._stopping = False
        self._fatal = None
        self._closed.clear()
        self._closing.clear()
        self._stats.started = time.monotonic()
        self._running = True
        # Register before returning: once start() returns, every process sees this worker.
        try:
            await self._beat()
        except BaseException:
            self._running = False
            await self._waiter.close()
            raise
        self._tasks = [
            asyncio.create_task(self._fetch_loop(), name=f"{self.name}-fetch"),
            asyncio.create_task(self._ack_loop(), name=f"{self.name}-ack"),
            asyncio.create_task(self._heartbeat_loop(), name=f"{self.name}-heartbeat"),
        ]
        if self.config.autoscaling:
            self._tasks.append(asyncio.create_task(self._scale_loop(),
                                                   name=f"{self.name}-autoscale"))
        self.log.info("started (queue=%s, concurrency=%s)", self.stats().queue,
                      f"{self._limit} of {self.config.min_concurrency}-"
                      f"{self.config.concurrency}, autoscaling" if self.config.autoscaling
                      else self.config.concurrency)

    async def stop(self) -> None:
        """Stop fetching, let running jobs finish within shutdown_timeout, hand back the rest."""
        async with self._stop_lock:
            if not self._running:
                return
            self._stopping = True
            await self._stop_fetching()
            running = [r.task for r in self._inflight.values()]
            if running:
                self.log.info("waiting up to %.1fs for %d running job(s)",
                              self.config.shutdown_timeout, len(running))
                await asyncio.wait(running, timeout=self.config.shutdown_timeout)
            leftovers = list(self._inflight.values())
            for entry in leftovers:
                entry.task.cancel()
            if leftovers:
                await asyncio.wait([e.task for e in leftovers], timeout=MAX_BLOCK + 5.0)
                await self._hand_back([(e.job.id, e.job.token) for e in leftovers])
            # The loops watch _closing rather than relying on cancellation alone: redis-py can
            # swallow a CancelledError that lands while a command is in flight.
            self._closing.set()
            self._ack_ready.set()
            await self._flush_acks(final=True)
            background = self._tasks[1:]
            _, late = await asyncio.wait(background, timeout=self.config.lease_timeout)
            for task in late:
                task.cancel()
            await self._unregister()
            await self._waiter.close()
            self._running = False
            self._closed.set()
            self.log.info("stopped (%d processed, %d failed)", self._stats.processed,
                          self._stats.failed)

    async def wait(self) -> None:
        """Wait until the worker stops; re-raise the exception that stopped it, if any."""
        await self._closed.wait()
        if self._fatal is not None:
            raise self._fatal

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- fetching ---------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        outages = 0
        block: float | None = None  # seconds to wait for work before reserving; None: no wait
        while not self._stopping:
            free = self._limit - len(self._inflight)
            if free <= 0:
                self._slot_freed.clear()
                await self._idle(self._slot_freed.wait())
                continue
            # Fair priority: the last urgent_slots free slots only take urgent jobs, so a flood
            # of long low-priority jobs cannot keep an urgent one waiting.
            urgent_only = free <= self.config.urgent_slots
            min_priority = self.config.urgent_priority if urgent_only else None
            want = min(free if urgent_only else free - self.config.urgent_slots,
                       self.config.batch_size)
            acks = self._take_acks() if block is None else []  # when idle the acker sends them
            try:
                if block is None:
                    oks, reservation = await self.repo.complete_and_reserve(
                        [(a.job.id, a.job.token, a.result) for a in acks], self.worker_id,
                        want, self.config.lease_timeout, self.config.max_retries,
                        min_priority=min_priority,
                    )
                else:
                    oks, reservation = [], await self._wait_and_reserve(block, want,
                                                                        min_priority)
                outages = 0
            except asyncio.CancelledError:
                self._acks[:0] = acks  # maybe not stored: the final flush sends them
                raise
            except RepositoryError as exc:
                self._acks[:0] = acks
                outages += 1
                await self._idle(self._outage_pause(outages, exc))
                continue
            self._settle(acks, oks)
            if self._stopping:  # stop() began during the round trip: start no new work
                if reservation.jobs:
                    await self._hand_back([(job.id, job.token) for job in reservation.jobs])
                return
            for job in reservation.jobs:
                self._spawn(job)
            if len(reservation.jobs) >= want:
                block = None  # there may be more: reserve again as soon as slots are free
                continue
            block = self.config.poll_interval
            if reservation.next_due is not None:
                block = min(block, max(0.0, reservation.next_due - time.time()))
            if reservation.jobs:
                await asyncio.sleep(0)  # let the new jobs start before the next wait is sent

    async def _wait_and_reserve(self, timeout: float, want: int,
                                min_priority: int | None = None) -> Reservation:
        """Block until woken (or ``timeout``), then reserve: one round trip, not cancellable
        (stop() interrupts it instead, see _stop_fetching)."""
        self._fetch_blocked = True
        try:
            return await self._waiter.wait_and_reserve(
                timeout, self.worker_id, want, self.config.lease_timeout,
                self.config.max_retries, min_priority=min_priority,
            )
        finally:
            self._fetch_blocked = False

    async def _idle(self, wait: Awaitable[_T]) -> _T:
        """Await ``wait`` as a point where stop() may cancel the fetch loop.

        Only waits are such points. Cancelling a round trip could lose its reply after Redis
        ran it: a reservation (those jobs would sit leased until their lease ran out, and count
        an attempt) or completions (sent again, then refused by fencing).
        """
        self._fetch_idle = True
        try:
            return await wait
        finally:
            self._fetch_idle = False

    async def _stop_fetching(self) -> None:
        """End the fetch loop: cancel it while it waits, interrupt a blocked wait-and-reserve,
        and otherwise let its round trip finish."""
        fetch = self._tasks[0]
        self._slot_freed.set()
        deadline = time.monotonic() + MAX_BLOCK + 5.0  # a round trip or blocked wait ends by then
        while not fetch.done() and time.monotonic() < deadline:
            if self._fetch_idle:
                fetch.cancel()
            elif self._fetch_blocked:
                try:
                    await self._waiter.interrupt()
                except RepositoryError as exc:  # e.g. CLIENT denied by ACL: the wait times out
                    self.log.debug("could not interrupt the wait for work: %s", exc)
            await asyncio.wait([fetch], timeout=0.05)
        if not fetch.done():
            fetch.cancel()
            await asyncio.wait([fetch], timeout=1.0)

    async def _outage_pause(self, outages: int, exc: Exception) -> None:
        delay = backoff_delay(outages, base=0.1, cap=max(self.config.poll_interval, 1.0))
        level = logging.WARNING if outages == 1 or outages % 20 == 0 else logging.DEBUG
        self.log.log(level, "Redis unavailable (attempt %d), retrying in %.2fs: %s",
                     outages, delay, exc)
        await asyncio.sleep(delay)

    def _spawn(self, job: Job) -> None:
        ctx = JobContext(job, self.repo, worker_name=self.name,
                         lease=self.config.lease_timeout, base_logger=self._base_logger)
        task = asyncio.create_task(self._run(job, ctx), name=f"job-{job.id}")
        self._inflight[job.id] = _Running(job, ctx, task, time.monotonic())

    # -- running one job --------------------------------------------------------------------

    async def _run(self, job: Job, ctx: JobContext) -> None:
        started = time.monotonic()
        if self._base_logger.isEnabledFor(logging.DEBUG):
            ctx.logger.debug("starting %s (attempt %d)", job.type, ctx.attempt)
        try:
            if self.job_types is not None and job.type not in self.job_types:
                raise UnknownJobTypeError(
                    f"worker {self.name} has no handler for job type {job.type!r}; "
                    f"it handles {sorted(self.job_types)}"
                )
            if self._job_limits is None:
                result = await self._attempt(job, ctx)
            else:
                result = await self._limited_attempt(self._job_limits, job, ctx)
        except asyncio.CancelledError:
            self._release_slot(job.id)
            if ctx.lease_lost and not self._stopping:
                # Cancelled by _beat, not by stop(): the job is another worker's now (or lease
                # recovery requeued it), and any result of ours would be refused by fencing.
                ctx.logger.warning("lease lost, result dropped: the heartbeat found the job "
                                   "taken over or recovered; attempt stopped")
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                return
            raise  # shutdown: stop() hands the job back
        except _Refused as refused:
            await self._refuse(job, ctx, refused.error)
            return
        except LeaseLostError as exc:
            # Another worker runs the job now: this attempt is not ours to record, as a failure
            # or in the statistics (the owner's attempt counts once, where it finishes).
            ctx.logger.warning("lease lost, result dropped: %s", exc)
            self._release_slot(job.id)
            return
        except JobCancelledError:
            await self._report(job, ctx, ctx.logger, None, started, cancel=True)
            return
        except Exception as exc:
            if not self.config.enable_recovery and not isinstance(exc, DocworkersError):
                ctx.logger.error("unrecovered exception, stopping worker (recovery disabled): "
                                 "%r", exc)
                self._fatal = exc
                self._release_slot(job.id)  # the job stays leased: lease recovery takes it
                asyncio.get_running_loop().call_soon(self._stop_in_background)
                return
            await self._report(job, ctx, ctx.logger, exc, started)
            return
        self._acks.append(_Ack(job, result, time.monotonic() - started))
        self._release_slot(job.id)
        self._ack_ready.set()

    async def _attempt(self, job: Job, ctx: JobContext) -> Any:
        self._in_handler.add(job.id)
        try:
            if self.config.job_timeout is None:
                return await self.process(job, ctx)
            try:
                # asyncio.timeout, unlike wait_for, runs the handler in this task
                async with asyncio.timeout(self.config.job_timeout):
                    return await self.process(job, ctx)
            except TimeoutError as exc:
                raise JobTimeoutError(
                    f"job ran longer than job_timeout={self.config.job_timeout}s"
                ) from exc
        finally:
            self._in_handler.discard(job.id)

    async def _limited_attempt(self, limits: JobLimits, job: Job, ctx: JobContext) -> Any:
        """The attempt under the job type's cluster-wide limits (workers/job_limits.py); the
        running slot is given back as soon as process() ends, however it ends."""
        try:
            permit = await limits.admit(job.type)
        except RateLimitedError as exc:
            raise _Refused(exc) from exc
        try:
            return await self._attempt(job, ctx)
        finally:
            await permit.aclose()

    async def _refuse(self, job: Job, ctx: JobContext, exc: RateLimitedError) -> None:
        """A job-type limit refused to start the job: back to the queue for when a permit is
        expected, without using an attempt or counting it as processed (it never ran)."""
        failure = JobFailure(error_code(exc), str(exc))
        try:
            status = await asyncio.shield(self._fail_until_stored(
                job, failure, True, max(exc.retry_after, 0.05), False, defer=True))
        finally:
            self._release_slot(job.id)
        if status is not None:
            ctx.logger.debug("not started, deferred %.3fs: %s", exc.retry_after, exc)

    def _stop_in_background(self) -> None:
        self._stopper = asyncio.create_task(self.stop(), name=f"{self.name}-stop")

    async def _report(self, job: Job, ctx: JobContext, log: logging.LoggerAdapter[logging.Logger],
                      exc: BaseException | None, started: float, cancel: bool = False) -> None:
        """Store the failed attempt; shielded so a shutdown cannot lose the report."""
        duration = time.monotonic() - started
        defer = False
        if cancel:
            failure = JobFailure("cancelled", "cancelled on request")
            retry, delay = False, 0.0
        else:
            assert exc is not None
            retry = exc.retryable if isinstance(exc, JobError) else True
            failure = JobFailure(
                error_code(exc), str(exc) or type(exc).__name__,
                "".join(traceback.format_exception(exc)),
                getattr(exc, "stage", None),
            )
            delay = backoff_delay(job.retry_count + 1, base=self.config.retry_delay,
                                  cap=self.config.retry_delay_cap,
                                  jitter=random.uniform if self.config.retry_jitter else None)
            retry_after = getattr(exc, "retry_after", None)
            if retry and isinstance(retry_after, int | float):
                # An open circuit breaker or a rate limit refused the call without trying it:
                # run again when it expects to allow calls, without using up an attempt.
                defer, delay = True, max(float(retry_after), 0.05)
        try:
            status = await asyncio.shield(self._fail_until_stored(job, failure, retry, delay,
                                                                  cancel, defer))
        finally:
            self._release_slot(job.id)
        if status is None:  # fencing refused the report: a stale attempt, not counted
            return
        log_fn = log.info if cancel else log.warning
        log_fn("attempt %d failed after %.3fs -> %s: %s", ctx.attempt, duration, status,
               failure.message)
        self._finish(job, ok=False, duration=duration)

    async def _fail_until_stored(self, job: Job, failure: JobFailure, retry: bool,
                                 delay: float, cancel: bool, defer: bool = False
                                 ) -> str | None:
        outages = 0
        while True:
            try:
                status = await self.repo.fail(
                    job.id, job.token, failure, retry=retry, retry_delay=delay,
                    default_max_retries=self.config.max_retries, cancel=cancel, defer=defer,
                )
                return status.value
            except LeaseLostError as exc:
                self.log.warning("%s", exc)
                return None
            except RepositoryConnectionError as exc:
                outages += 1
                await self._outage_pause(outages, exc)

    def _release_slot(self, job_id: str) -> None:
        self._inflight.pop(job_id, None)
        self._slot_freed.set()

    def _finish(self, job: Job, *, ok: bool, duration: float) -> None:
        self._stats.record(ok=ok, duration=duration)
        if ok:  # failures are often fast (a refused call): they would set a false best
            self._latency.record(duration)

    # -- acknowledgements -------------------------------------------------------------------

    def _take_acks(self) -> list[_Ack]:
        acks, self._acks = self._acks, []
        return acks

    def _settle(self, acks: list[_Ack], oks: list[bool]) -> None:
        for ack, ok in zip(acks, oks, strict=True):
            if ok:
                self._finish(ack.job, ok=True, duration=ack.duration)
            else:  # a stale attempt: the worker that took the job over counts it
                self.log.warning("job %s: completion rejected by fencing (lease taken over)",
                                 ack.job.id)

    async def _ack_loop(self) -> None:
        while not self._closing.is_set():
            await self._ack_ready.wait()
            self._ack_ready.clear()
            await asyncio.sleep(0)  # let the fetch loop piggy-back these acks if it can
            await self._flush_acks()

    async def _flush_acks(self, final: bool = False) -> None:
        outages = 0
        while self._acks:
            acks = self._take_acks()
            try:
                oks = await self.repo.complete_many(
                    [(a.job.id, a.job.token, a.result) for a in acks])
            except RepositoryError as exc:
                self._acks[:0] = acks
                outages += 1
                if final and outages > 3:
                    self.log.error("could not store %d completion(s) before stopping; their "
                                   "leases will expire and the jobs run again", len(acks))
                    self._acks.clear()
                    return
                await self._outage_pause(outages, exc)
                continue
            self._settle(acks, oks)

    # -- dynamic concurrency ----------------------------------------------------------------

    async def _scale_loop(self) -> None:
        """Every scale_interval: one ZCARD for the backlog, then let the controller decide.
        Without the depth the limit stays (the fetch loop reports Redis outages)."""

        async def step() -> None:
            if not self._stopping:
                self.rescale(await self.repo.queue_depth())

        await self._every(self.config.scale_interval, step, lambda exc: self.log.debug(
            "autoscaling skipped, no queue depth: %s", exc))

    def rescale(self, queue_depth: int) -> int:
        """Apply one scaling decision for ``queue_depth`` waiting jobs; returns the new limit."""
        self._rss_mb = resident_memory_mb()
        before = self._limit
        decision = self._controller.decide(ScalingSignals(
            limit=before, in_flight=len(self._inflight), queue_depth=queue_depth,
            latency=self._latency.latency, best_latency=self._latency.best, rss_mb=self._rss_mb,
        ))
        self._scaling = decision.reason
        if decision.changed(before):
            self._limit = decision.limit
            self._stats.concurrency_changes += 1
            # Growth and memory pressure are news; single steps down would flood the log.
            level = logging.INFO if decision.reason in ("backlog", "memory") else logging.DEBUG
            self.log.log(level, "concurrency %d -> %d (%s; %d waiting, %d running, latency %s, "
                         "%.0f MiB)", before, decision.limit, decision.reason, queue_depth,
                         len(self._inflight),
                         "-" if self._latency.latency is None
                         else f"{self._latency.latency:.3f}s", self._rss_mb)
            if decision.limit > before:
                self._slot_freed.set()  # the fetch loop may be waiting for a free slot
        return self._limit

    # -- heartbeat --------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        await self._every(self.config.heartbeat_interval, self._beat,
                          lambda exc: self.log.warning("heartbeat failed: %s", exc))

    async def _every(self, interval: float, step: Callable[[], Awaitable[None]],
                     failed: Callable[[Exception], None]) -> None:
        """Run ``step`` every ``interval`` seconds until the worker closes. A failing step goes
        to ``failed`` and the loop carries on: background loops never die."""
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), interval)
            if self._closing.is_set():
                return
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed(exc)

    async def _beat(self, ttl: float | None = None) -> None:
        running = list(self._inflight.values())
        lost, cancel = await self.repo.heartbeat(
            self.name, self.stats().to_dict(),
            self.config.lease_timeout if ttl is None else ttl,
            self.config.lease_timeout, [(r.job.id, r.job.token) for r in running],
        )
        by_id = {r.job.id: r for r in running}
        for job_id in cancel:
            if job_id in by_id:
                by_id[job_id].ctx.cancel_requested = True
        for job_id in lost:
            if job_id in by_id and job_id not in cancel:
                by_id[job_id].ctx.lease_lost = True
                if job_id in self._in_handler:
                    # Its result would be refused by fencing: stop the work now (see _run).
                    by_id[job_id].task.cancel()

    async def _unregister(self) -> None:
        with contextlib.suppress(RepositoryError, OSError):
            await self._beat(ttl=0)

    async def _hand_back(self, jobs: list[tuple[str, int]]) -> None:
        try:
            n = await self.repo.release(jobs)
            self.log.info("handed %d unfinished job(s) back to the queue", n)
        except RepositoryError as exc:
            self.log.warning("could not hand back %d job(s) (%s); their leases will expire "
                             "and they will run again", len(jobs), exc)
