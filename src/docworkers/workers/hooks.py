"""Hooks: what a worker does around its jobs besides running them, given to it as objects.

Like Dramatiq's middleware, a hook overrides only the callbacks it needs (each is a no-op
here):

* ``before_job(job, ctx)`` runs before ``process()``; raising :class:`JobRefused` puts the job
  back in the queue without running it (no attempt used, not counted as processed);
* ``after_job(job, ctx, result, error)`` runs once ``process()`` has ended, however it ended
  (``error`` is the exception, or None and ``result`` its return value) — for every hook whose
  ``before_job`` returned, in reverse order;
* ``adjust_failure(job, exc, failure)`` may change how a failed attempt is recorded (e.g. defer
  it instead of using an attempt);
* ``adjust_stats(stats)`` may add to the stats the heartbeat publishes.

``BaseWorker(..., hooks=None)`` gets :func:`~docworkers.workers.standard_hooks.default_hooks`:
the job-type limits, breaker/limit deferral and service states of today's behaviour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from docworkers.errors import DocworkersError, error_code
from docworkers.queue.job import Job, JobErrorInfo
from docworkers.queue.protocol import Failure
from docworkers.workers.stats import WorkerStats

if TYPE_CHECKING:
    from docworkers.workers.context import JobContext

__all__ = ["MIN_DEFER", "Hooks", "JobRefused", "WorkerHook"]

T = TypeVar("T")

MIN_DEFER = 0.05  # seconds: a deferral due "now" still waits this long, never a busy loop


class JobRefused(Exception):
    """Raised by a hook's ``before_job``: the job goes back to the queue for ``retry_after``
    seconds without running, using an attempt, or counting as processed. ``error`` is what the
    job shows meanwhile."""

    def __init__(self, error: DocworkersError, retry_after: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after

    @property
    def failure(self) -> Failure:
        """How the queue records the refusal: deferred, no attempt used."""
        return Failure.defer(JobErrorInfo(error_code(self.error), str(self.error)),
                             max(self.retry_after, MIN_DEFER))


class WorkerHook:
    """Base class of hooks: every callback does nothing (see the module docstring)."""

    async def before_job(self, job: Job, ctx: JobContext) -> None:
        """Before ``process()``; raise :class:`JobRefused` to put the job back unrun."""

    async def after_job(self, job: Job, ctx: JobContext, result: Any,
                        error: BaseException | None) -> None:
        """After ``process()`` ended, however it ended (if ``before_job`` returned)."""

    def adjust_failure(self, job: Job, exc: BaseException, failure: Failure) -> Failure:
        """How the failed attempt ``exc`` is recorded; ``failure`` is the retry policy's."""
        return failure

    def adjust_stats(self, stats: WorkerStats) -> WorkerStats:
        """The stats to publish, given the worker's own."""
        return stats


def _overrides(hook: WorkerHook, name: str) -> bool:
    return getattr(type(hook), name) is not getattr(WorkerHook, name)


class Hooks:
    """A worker's hooks, in order. Only hooks that override a callback are called for it, so a
    worker whose hooks have no ``before_job``/``after_job`` pays nothing per job."""

    def __init__(self, hooks: Sequence[WorkerHook]) -> None:
        self.all = tuple(hooks)
        self.around = tuple(h for h in self.all
                            if _overrides(h, "before_job") or _overrides(h, "after_job"))
        self._failure = tuple(h for h in self.all if _overrides(h, "adjust_failure"))
        self._stats = tuple(h for h in self.all if _overrides(h, "adjust_stats"))

    async def run(self, job: Job, ctx: JobContext, attempt: Callable[[], Awaitable[T]]) -> T:
        """``before_job`` of each hook, ``attempt()``, then ``after_job`` in reverse order of
        every hook whose ``before_job`` returned, whatever happened."""
        entered: list[WorkerHook] = []
        result: Any = None
        error: BaseException | None = None
        try:
            for hook in self.around:
                await hook.before_job(job, ctx)
                entered.append(hook)
            value = await attempt()
            result = value
            return value
        except BaseException as exc:
            error = exc
            raise
        finally:
            for hook in reversed(entered):
                await hook.after_job(job, ctx, result, error)

    def adjust_failure(self, job: Job, exc: BaseException, failure: Failure) -> Failure:
        for hook in self._failure:
            failure = hook.adjust_failure(job, exc, failure)
        return failure

    def adjust_stats(self, stats: WorkerStats) -> WorkerStats:
        for hook in self._stats:
            stats = hook.adjust_stats(stats)
        return stats
