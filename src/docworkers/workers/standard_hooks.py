"""The hooks a worker is given unless told otherwise (:func:`default_hooks`).

* :class:`DeferRefusedCalls`: a call an open circuit breaker or a rate/concurrency limit refused
  without trying it (a retryable error carrying ``retry_after``: ``CircuitOpenError``,
  ``RateLimitedError``) defers the job until then, **without using an attempt**, so an outage
  never dead-letters jobs that could not even try;
* :class:`ServiceStates`: the process's circuit breaker states and refused calls (process-wide
  registries, see ``circuit_breaker`` and ``service_guard``) in the stats each heartbeat
  publishes (``docworkers stats``, ``/api/workers``, ``/metrics``);
* :class:`~docworkers.workers.job_limits.JobLimitsHook`: the job type's cluster-wide limits
  (``WorkerConfig.rate_limit`` / ``max_running``), only when one is set.
"""

from __future__ import annotations

import dataclasses

from docworkers.queue.job import Job
from docworkers.queue.protocol import Failure, FailureKind, WorkerRepository
from docworkers.workers.circuit_breaker import breaker_states
from docworkers.workers.config import WorkerConfig
from docworkers.workers.hooks import MIN_DEFER, WorkerHook
from docworkers.workers.job_limits import JobLimits, JobLimitsHook
from docworkers.workers.service_guard import refused_calls
from docworkers.workers.stats import WorkerStats

__all__ = ["DeferRefusedCalls", "ServiceStates", "default_hooks"]


class DeferRefusedCalls(WorkerHook):
    """Run a job whose call was refused untried again when the refusal ends (see above)."""

    def adjust_failure(self, job: Job, exc: BaseException, failure: Failure) -> Failure:
        retry_after = getattr(exc, "retry_after", None)
        if failure.kind is FailureKind.RETRY and isinstance(retry_after, int | float):
            return Failure.defer(failure.error, max(float(retry_after), MIN_DEFER))
        return failure


class ServiceStates(WorkerHook):
    """Publish this process's breaker states and refused calls with the worker's stats."""

    def adjust_stats(self, stats: WorkerStats) -> WorkerStats:
        return dataclasses.replace(stats, breakers=breaker_states(), limited=refused_calls())


def default_hooks(config: WorkerConfig, repo: WorkerRepository) -> list[WorkerHook]:
    """Today's behaviour: deferral of refused calls, service states in the stats, and the job
    type's limits when ``config`` sets any (no Redis cost per job otherwise)."""
    hooks: list[WorkerHook] = [DeferRefusedCalls(), ServiceStates()]
    limits = JobLimits.for_worker(config, repo)
    if limits is not None:
        hooks.append(JobLimitsHook(limits))
    return hooks
