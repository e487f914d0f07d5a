"""A worker built from plain ``async def handler(job, ctx)`` functions, one per job type."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from docworkers.errors import ConfigurationError, UnknownJobTypeError
from docworkers.queue.job import Job
from docworkers.queue.protocol import WorkerRepository
from docworkers.workers.base import BaseWorker
from docworkers.workers.config import WorkerConfig
from docworkers.workers.context import JobContext
from docworkers.workers.hooks import WorkerHook

Handler = Callable[[Job, JobContext], Awaitable[Any]]


class FunctionWorker(BaseWorker):
    def __init__(self, config: WorkerConfig, *, job_repo: WorkerRepository,
                 handlers: Mapping[str, Handler], logger: logging.Logger | None = None,
                 hooks: Sequence[WorkerHook] | None = None) -> None:
        if not handlers:
            raise ConfigurationError("handlers", "give at least one job type and its handler")
        super().__init__(config, job_repo=job_repo, logger=logger, hooks=hooks)
        self.handlers = dict(handlers)

    async def process(self, job: Job, ctx: JobContext) -> Any:
        handler = self.handlers.get(job.type)
        if handler is None:
            raise UnknownJobTypeError(
                f"no handler for job type {job.type!r}; this worker handles "
                f"{sorted(self.handlers)}"
            )
        return await handler(job, ctx)
