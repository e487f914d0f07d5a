"""BaseWorker: the job loop and the worker's lifecycle. A subclass overrides :meth:`process`.

Running one job: a :class:`JobContext`, the hooks' ``before_job``, ``process()`` under
``job_timeout``, the hooks' ``after_job``, then the outcome. A result goes to the acker
(completed in batches); a failure is stored as one typed :class:`Failure` (retry with backoff,
final, deferred or cancelled: see :mod:`~docworkers.workers.retries`); an attempt whose lease
was lost records nothing, as a failure or in the statistics (the new owner's attempt counts).

Everything else is a component with its own module and start/stop: the fetcher (reserve jobs
while slots are free, block on Redis when idle), the acker (batched completions, piggy-backed
on reservations), the heartbeat (leases, stats, cancel and lease-lost news) and the
concurrency limit (``scaling``, fixed or autoscaled). Job-type limits, the deferral of calls a
breaker or limit refused and the publishing of service states are hooks the worker is given
(:mod:`~docworkers.workers.hooks`). Only an unrecovered handler exception
(``enable_recovery=False``) stops the worker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from itertools import islice
from typing import Any, ClassVar, Self

from docworkers.errors import (
    DocworkersError,
    JobCancelledError,
    JobTimeoutError,
    LeaseLostError,
    RepositoryConnectionError,
    UnknownJobTypeError,
)
from docworkers.queue.job import Job, iso_time
from docworkers.queue.protocol import Failure, FailureKind, WorkerRepository
from docworkers.queue.waiter import MAX_BLOCK
from docworkers.workers.acker import Ack, Acker
from docworkers.workers.config import DEFAULT_CONCURRENCY, WorkerConfig
from docworkers.workers.context import JobContext
from docworkers.workers.fetcher import Fetcher
from docworkers.workers.heartbeat import Heartbeat
from docworkers.workers.hooks import Hooks, JobRefused, WorkerHook
from docworkers.workers.logs import worker_logger
from docworkers.workers.loops import outage_pause
from docworkers.workers.retries import failure_of
from docworkers.workers.scaling import Scaling
from docworkers.workers.slots import Running, Slots
from docworkers.workers.standard_hooks import default_hooks
from docworkers.workers.stats import CURRENT_JOBS_SHOWN, StatsRecorder, WorkerStats


class BaseWorker(ABC):
    """Runs jobs from one queue with bounded concurrency. Override :meth:`process`.

    ``hooks`` (None: :func:`~docworkers.workers.standard_hooks.default_hooks`) are what the
    worker does around each job besides running it.
    """

    job_types: ClassVar[frozenset[str] | None] = None  # None: accept every type
    # Jobs at once when the config leaves concurrency at 0: async handlers wait on I/O; a
    # worker whose jobs use the CPU says fewer (CPU_BOUND_CONCURRENCY).
    default_concurrency: ClassVar[int] = DEFAULT_CONCURRENCY

    def __init__(self, config: WorkerConfig, *, job_repo: WorkerRepository,
                 logger: logging.Logger | None = None,
                 hooks: Sequence[WorkerHook] | None = None) -> None:
        config = config.with_default_concurrency(self.default_concurrency)
        self.config = config
        self.repo = job_repo
        self.worker_id = f"{config.worker_name}:{socket.gethostname()}:{os.getpid()}:" \
                         f"{uuid.uuid4().hex[:6]}"
        self._base_logger = logger or logging.getLogger("docworkers.worker")
        self._base_logger.setLevel(config.log_level.upper())
        self.log = worker_logger(config.worker_name, base=self._base_logger)
        self.hooks = Hooks(default_hooks(config, job_repo) if hooks is None else hooks)
        self._stats = StatsRecorder()
        self._running = False
        self._stopping = False
        self._closed = asyncio.Event()
        self._fatal: BaseException | None = None
        self._stop_lock = asyncio.Lock()
        self._stopper: asyncio.Task[None] | None = None
        self._outcome: asyncio.Future[None] | None = None  # see wait_for_outcome
        self._outage_cap = max(config.poll_interval, 1.0)
        self._slots = Slots(config.min_concurrency or config.concurrency)
        self.scaling = Scaling(config, job_repo, self._slots, name=self.name, log=self.log)
        self.acker = Acker(job_repo, settled=self._completed, log=self.log,
                           outage_cap=self._outage_cap)
        self.fetcher = Fetcher(job_repo, config, worker_id=self.worker_id, slots=self._slots,
                               acker=self.acker, spawn=self._spawn, log=self.log)
        self.heartbeat = Heartbeat(job_repo, self._slots, name=self.name,
                                   lease=config.lease_timeout,
                                   interval=config.heartbeat_interval, stats=self.stats,
                                   log=self.log)

    # -- the Worker protocol ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.worker_name

    def is_running(self) -> bool:
        return self._running

    def stats(self) -> WorkerStats:
        s, scaling, c = self._stats, self.scaling, self.config
        return self.hooks.adjust_stats(WorkerStats(
            worker_name=self.name,
            jobs_processed=s.processed,
            jobs_succeeded=s.succeeded,
            jobs_failed=s.failed,
            average_process_time=s.average,
            last_job_time=s.last_job_time,
            uptime=s.uptime if self._running else 0.0,
            is_running=self._running,
            in_flight=len(self._slots.running),
            concurrency=self._slots.limit,
            queue=self.repo.queue,
            pid=os.getpid(),
            host=socket.gethostname(),
            min_concurrency=c.min_concurrency or c.concurrency,
            max_concurrency=c.concurrency,
            scaling=scaling.reason,
            concurrency_changes=scaling.changes,
            latency=scaling.latency.latency or 0.0,
            rss_mb=round(scaling.rss_mb, 1),
            started_at=s.started_at if self._running else None,
            updated_at=time.time(),
            outcomes=dict(s.outcomes),
            current_jobs=[{"id": r.job.id, "type": r.job.type,
                           "started_at": iso_time(r.job.started_at)}
                          for r in islice(self._slots.running.values(), CURRENT_JOBS_SHOWN)],
        ))

    @property
    def stored_outcomes(self) -> int:
        """Outcomes stored so far: completions and recorded failed attempts (the
        ``jobs_processed`` of :meth:`stats`)."""
        return self._stats.processed

    async def wait_for_outcome(self, seen: int, timeout: float) -> bool:
        """Wait until :attr:`stored_outcomes` exceeds ``seen``, at most ``timeout`` seconds;
        True if it does. A command watching its jobs (``ingest --wait``)
        reads the count before it looks at them, then waits here instead of sleeping: it hears
        of each outcome at once and misses none stored while it looked."""
        if self._stats.processed > seen:
            return True
        if self._outcome is None:
            self._outcome = asyncio.get_running_loop().create_future()
        await asyncio.wait([self._outcome], timeout=timeout)  # never cancels the future
        return self._stats.processed > seen

    @abstractmethod
    async def process(self, job: Job, ctx: JobContext) -> Any:
        """Run one job attempt and return its JSON-serialisable result."""

    async def start(self) -> None:
        """Check Redis, then start the components. Returns once running."""
        if self._running:
            return
        # A clear RepositoryConnectionError naming the URL if Redis is down (the CLI retries
        # it, see workers/startup.py); it also warns if Redis may evict jobs.
        await self.repo.check_server()
        await self.fetcher.connect()
        self._stopping = False
        self._fatal = None
        self._closed.clear()
        self._stats.start()
        self._running = True
        # Register before returning: once start() returns, every process sees this worker.
        try:
            await self.heartbeat.beat()
        except BaseException:
            self._running = False
            await self.fetcher.close()
            raise
        self.fetcher.start(f"{self.name}-fetch")
        self.acker.start(f"{self.name}-ack")
        self.heartbeat.start()
        self.scaling.start()
        c = self.config
        self.log.info("started (queue=%s, concurrency=%s)", self.repo.queue,
                      f"{self._slots.limit} of {c.min_concurrency}-{c.concurrency}, autoscaling"
                      if c.autoscaling else c.concurrency)

    async def stop(self) -> None:
        """Stop fetching, let running jobs finish within shutdown_timeout, hand back the rest."""
        async with self._stop_lock:
            if not self._running:
                return
            self._stopping = True
            self.scaling.close()
            await self.fetcher.stop()
            await self._drain()
            lease = self.config.lease_timeout
            await asyncio.gather(self.acker.stop(lease), self.heartbeat.stop(lease),
                                 self.scaling.stop(lease))
            await self.fetcher.close()
            self._running = False
            self._closed.set()
            self.log.info("stopped (%d processed, %d failed)", self._stats.processed,
                          self._stats.failed)

    async def _drain(self) -> None:
        """Wait up to shutdown_timeout for running jobs; cancel the rest and hand them back."""
        running = [r.task for r in self._slots.running.values()]
        if running:
            self.log.info("waiting up to %.1fs for %d running job(s)",
                          self.config.shutdown_timeout, len(running))
            await asyncio.wait(running, timeout=self.config.shutdown_timeout)
        leftovers = list(self._slots.running.values())
        for entry in leftovers:
            entry.task.cancel()
        if leftovers:
            await asyncio.wait([e.task for e in leftovers], timeout=MAX_BLOCK + 5.0)
            await self.fetcher.hand_back([e.job for e in leftovers])

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

    # -- running one job --------------------------------------------------------------------

    def _spawn(self, job: Job) -> None:
        ctx = JobContext(job, self.repo, worker_name=self.name,
                         lease=self.config.lease_timeout, base_logger=self._base_logger)
        entry = Running(job, ctx, time.monotonic())
        # The loop's own create_task takes the name in the task's constructor (asyncio's
        # create_task names it "Task-N" first, then renames it in Python).
        entry.task = asyncio.get_running_loop().create_task(self._run(entry),
                                                            name=f"job-{job.id}")
        self._slots.running[job.id] = entry

    async def _run(self, entry: Running) -> None:
        """One attempt, from start to its recorded outcome (see the module docstring)."""
        job, ctx = entry.job, entry.ctx
        if self._base_logger.isEnabledFor(logging.DEBUG):
            ctx.logger.debug("starting %s (attempt %d)", job.type, ctx.attempt)
        try:
            if self.job_types is not None and job.type not in self.job_types:
                raise UnknownJobTypeError(
                    f"worker {self.name} has no handler for job type {job.type!r}; "
                    f"it handles {sorted(self.job_types)}"
                )
            if self.hooks.around:
                result = await self.hooks.run(job, ctx, functools.partial(self._attempt, entry))
            else:
                result = await self._attempt(entry)
        except asyncio.CancelledError:
            self._slots.release(job.id)
            if ctx.lease_lost and not self._stopping:
                # Cancelled by the heartbeat, not by stop(): the job is another worker's now (or
                # lease recovery requeued it), and any result of ours would be refused.
                ctx.logger.warning("lease lost, result dropped: the heartbeat found the job "
                                   "taken over or recovered; attempt stopped")
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                return
            raise  # shutdown: stop() hands the job back
        except JobRefused as refused:  # a hook refused to start it: it never ran
            await self._store_failure(entry, refused.failure, ran=False)
            return
        except LeaseLostError as exc:
            # Another worker runs the job now: this attempt is not ours to record, as a failure
            # or in the statistics (the owner's attempt counts once, where it finishes).
            ctx.logger.warning("lease lost, result dropped: %s", exc)
            self._slots.release(job.id)
            return
        except JobCancelledError:
            await self._store_failure(entry, Failure.cancelled())
            return
        except Exception as exc:
            if not self.config.enable_recovery and not isinstance(exc, DocworkersError):
                self._stop_on(exc, entry)
                return
            failure = failure_of(exc, attempt=ctx.attempt, config=self.config)
            await self._store_failure(entry, self.hooks.adjust_failure(job, exc, failure))
            return
        self.acker.add(Ack(job, result, time.monotonic() - entry.started))
        self._slots.release(job.id)

    async def _attempt(self, entry: Running) -> Any:
        entry.in_handler = True  # from here a lost lease cancels the task (see Heartbeat)
        try:
            if self.config.job_timeout is None:
                return await self.process(entry.job, entry.ctx)
            try:
                # asyncio.timeout, unlike wait_for, runs the handler in this task
                async with asyncio.timeout(self.config.job_timeout):
                    return await self.process(entry.job, entry.ctx)
            except TimeoutError as exc:
                raise JobTimeoutError(
                    f"job ran longer than job_timeout={self.config.job_timeout}s"
                ) from exc
        finally:
            entry.in_handler = False

    def _stop_on(self, exc: Exception, entry: Running) -> None:
        """enable_recovery=False: an unexpected exception stops the worker; the job stays
        leased, for lease recovery to take."""
        entry.ctx.logger.error("unrecovered exception, stopping worker (recovery disabled): "
                               "%r", exc)
        self._fatal = exc
        self._slots.release(entry.job.id)
        asyncio.get_running_loop().call_soon(self._stop_in_background)

    def _stop_in_background(self) -> None:
        self._stopper = asyncio.create_task(self.stop(), name=f"{self.name}-stop")

    async def _store_failure(self, entry: Running, failure: Failure, *,
                             ran: bool = True) -> None:
        """Store a failed attempt, shielded so a shutdown cannot lose it. An attempt that never
        ran (a hook refused it) is neither counted nor logged as a failure."""
        job, ctx = entry.job, entry.ctx
        duration = time.monotonic() - entry.started
        try:
            status = await asyncio.shield(self._fail_until_stored(job, failure))
        finally:
            self._slots.release(job.id)
        if status is None:  # fencing refused the report: a stale attempt, not counted
            return
        if not ran:
            ctx.logger.debug("not started, deferred %.3fs: %s", failure.delay,
                             failure.error.message)
            return
        log_fn = ctx.logger.info if failure.kind is FailureKind.CANCEL else ctx.logger.warning
        log_fn("attempt %d failed after %.3fs -> %s: %s", ctx.attempt, duration, status,
               failure.error.message)
        self._stats.record(ok=False, duration=duration, outcome=status)
        self._recorded()

    async def _fail_until_stored(self, job: Job, failure: Failure) -> str | None:
        """The job's new status; None if fencing refused (another worker owns the job)."""
        outages = 0
        while True:
            try:
                status = await self.repo.fail(job.id, job.token, failure,
                                              default_max_retries=self.config.max_retries)
                return status.value
            except LeaseLostError as exc:
                self.log.warning("%s", exc)
                return None
            except RepositoryConnectionError as exc:
                outages += 1
                await outage_pause(outages, exc, self.log, self._outage_cap)

    def _completed(self, ack: Ack) -> None:
        """A completion was stored (called by the acker)."""
        self._stats.record(ok=True, duration=ack.duration)
        self.scaling.latency.record(ack.duration)  # only completions: see Scaling.latency
        self._recorded()

    def _recorded(self) -> None:
        """An attempt's outcome was stored and counted: publish it, wake wait_for_outcome."""
        self.heartbeat.stats_changed()
        waiter, self._outcome = self._outcome, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
