"""What a handler gets besides its job: progress reporting, heartbeats, cancellation."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from docworkers.errors import JobCancelledError, LeaseLostError
from docworkers.queue.job import Job
from docworkers.workers.logs import worker_logger

if TYPE_CHECKING:
    from docworkers.queue.protocol import WorkerRepository


class JobContext:
    """Handed to the handler of one job attempt.

    ``progress`` stores percent and message on the job (fenced: a worker whose lease was taken
    over gets LeaseLostError) and renews the lease; if someone asked to cancel the job, it
    raises JobCancelledError so the handler stops at a safe point. A handler that writes
    somewhere the queue's scripts cannot fence (another store, other Redis keys) calls
    :meth:`ensure_owner` right before each such write.
    """

    def __init__(self, job: Job, repo: WorkerRepository, *, worker_name: str, lease: float,
                 logger: logging.LoggerAdapter[logging.Logger] | None = None,
                 base_logger: logging.Logger | None = None) -> None:
        self.job = job
        self.worker_name = worker_name
        self._logger = logger
        self._base_logger = base_logger
        self._repo = repo
        self._lease = lease
        self._progress = 0
        self._message = ""
        self.cancel_requested = False
        self.lease_lost = False

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """Logs with the worker name and job id; made on first use (most jobs never log)."""
        if self._logger is None:
            self._logger = worker_logger(self.worker_name, self.job.id, base=self._base_logger)
        return self._logger

    @property
    def attempt(self) -> int:
        """1 for the first run, 2 for the first retry, ..."""
        return self.job.retry_count + 1

    async def progress(self, percent: int, message: str = "") -> None:
        self.check_cancelled()
        self._progress = max(self._progress, int(percent))
        self._message = message
        if await self._repo.update_progress(
            self.job.id, self.job.token, self._progress, message, self._lease
        ):
            self.cancel_requested = True
        self.check_cancelled()

    @property
    def queue(self) -> str:
        """The queue the job came from (its fencing token counts per job of this queue)."""
        return self._repo.queue

    async def owns(self) -> bool:
        """Whether this attempt still owns its job (no other worker took it over)."""
        if self.lease_lost:
            return False  # a heartbeat saw the takeover; tokens never go back
        if not await self._repo.owns(self.job.id, self.job.token):
            self.lease_lost = True
        return not self.lease_lost

    async def ensure_owner(self) -> None:
        """Raise LeaseLostError unless this attempt still owns its job."""
        if not await self.owns():
            raise LeaseLostError(
                f"job {self.job.id!r}: attempt with token {self.job.token} no longer owns the "
                "job (its lease expired and another worker took it over); nothing written"
            )

    async def heartbeat(self) -> None:
        """Renew this job's lease now (long steps call it between units of work)."""
        await self.progress(self._progress, self._message)

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise JobCancelledError(f"job {self.job.id} was cancelled")
