"""Upload workers running inside the API process (``create_app(..., with_workers=N)``), for a
server that should also ingest what it receives; ``docworkers worker`` runs the other job types
(``build_pool(..., other_types=True)`` adds one worker of each to the pool)."""

from __future__ import annotations

import os
import socket
from typing import Any

from docworkers.api.metrics import ApiMetrics
from docworkers.ingest.jobs.kinds import JOB_TYPES
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.queue import Job
from docworkers.runtime import Runtime
from docworkers.workers import JobContext, WorkerPool
from docworkers.workers.hooks import WorkerHook


class UploadMetrics(WorkerHook):
    """Records each upload result's timings in the API's metrics."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self._metrics = metrics

    async def after_job(self, job: Job, ctx: JobContext, result: Any,
                        error: BaseException | None) -> None:
        if error is None:
            self._metrics.observe_upload_result(job.type, result)


def worker_name(index: int) -> str:
    # The worker registry in Redis is keyed by name, so two API replicas must not both call
    # their first worker "api-worker-0": host and pid make the name unique in the cluster.
    return f"api-worker-{index}@{socket.gethostname()}-{os.getpid()}"


def build_pool(runtime: Runtime, metrics: ApiMetrics, count: int, *,
               other_types: bool = False) -> WorkerPool:
    """``count`` metered upload workers on the runtime's queue and, with ``other_types`` and
    ``count`` > 0, one worker per other job type on its queue; not started yet."""
    pool = WorkerPool()
    for index in range(count):
        pool.add_worker(runtime.upload_worker(worker_name(index),
                                              hooks=[UploadMetrics(metrics)]))
    if other_types and count > 0:
        host = f"{socket.gethostname()}-{os.getpid()}"
        for job_type in JOB_TYPES:
            if job_type != UPLOAD_JOB_TYPE:
                pool.add_worker(runtime.job_worker(job_type, f"api-{job_type}@{host}"))
    return pool
