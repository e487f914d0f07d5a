"""Upload workers running inside the API process (``create_app(..., with_workers=N)``)."""

from __future__ import annotations

import os
import socket
from typing import Any

from docworkers.api.metrics import ApiMetrics
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.queue import Job
from docworkers.runtime import Runtime
from docworkers.workers import JobContext, WorkerPool


class MeteredUploadWorker(UploadWorker):
    """An UploadWorker that records each result's timings in the API's metrics."""

    def __init__(self, config: UploadWorkerConfig, metrics: ApiMetrics) -> None:
        super().__init__(config)
        self._metrics = metrics

    async def process(self, job: Job, ctx: JobContext) -> Any:
        result = await super().process(job, ctx)
        self._metrics.observe_upload_result(job.type, result)
        return result


def worker_name(index: int) -> str:
    # The worker registry in Redis is keyed by name, so two API replicas must not both call
    # their first worker "api-worker-0": host and pid make the name unique in the cluster.
    return f"api-worker-{index}@{socket.gethostname()}-{os.getpid()}"


def build_pool(runtime: Runtime, metrics: ApiMetrics, count: int) -> WorkerPool:
    """``count`` metered upload workers on the runtime's queue, not started yet."""
    pool = WorkerPool()
    for index in range(count):
        name = worker_name(index)
        pool.add_worker(MeteredUploadWorker(UploadWorkerConfig(
            worker=runtime.worker_config(name), job_repo=runtime.jobs,
            document_repo=runtime.documents, vector_repo=runtime.vectors,
            services=runtime.services,
        ), metrics))
    return pool
