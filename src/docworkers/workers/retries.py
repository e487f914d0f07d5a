"""The retry policy: how a failed attempt is recorded, as one typed Failure for the queue.

A permanent error (``PermanentJobError``: bad input, unknown job type, a document that cannot be
read) fails the job at once. Any other exception is retried after the n-th backoff delay
(``retry_delay · 2^(n-1)``, capped at ``retry_delay_cap``, full jitter unless ``retry_jitter``
is False); the queue dead-letters the job once its retries are used up. Hooks may then change
the decision (``DeferRefusedCalls`` defers a call refused untried).
"""

from __future__ import annotations

import random
import traceback

from docworkers.errors import JobError, error_code, error_stage
from docworkers.queue.job import JobErrorInfo
from docworkers.queue.protocol import Failure
from docworkers.workers.backoff import backoff_delay
from docworkers.workers.config import WorkerConfig

__all__ = ["failure_of"]


def failure_of(exc: BaseException, *, attempt: int, config: WorkerConfig) -> Failure:
    """How attempt number ``attempt`` (1 for the first run) failing with ``exc`` is recorded."""
    error = JobErrorInfo(
        error_code(exc), str(exc) or type(exc).__name__,
        "".join(traceback.format_exception(exc)),
        error_stage(exc),  # the stage of the job that failed, when the error says so
    )
    if isinstance(exc, JobError) and not exc.retryable:
        return Failure.final(error)
    return Failure.retry(error, backoff_delay(
        attempt, base=config.retry_delay, cap=config.retry_delay_cap,
        jitter=random.uniform if config.retry_jitter else None))
