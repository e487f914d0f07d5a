"""UploadWorker: the ``document_upload`` job on the worker framework."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from docworkers.ingest.attachments import enqueue_attachments
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.fencing import claim_fence
from docworkers.ingest.payload import UPLOAD_JOB_TYPE, UploadJobPayload
from docworkers.ingest.pipeline import DocumentServices, UploadPipeline
from docworkers.ingest.vector_repository import VectorRepository
from docworkers.queue.job import Job
from docworkers.queue.protocol import JobRepository
from docworkers.workers.base import BaseWorker
from docworkers.workers.config import CPU_BOUND_CONCURRENCY, WorkerConfig
from docworkers.workers.context import JobContext
from docworkers.workers.hooks import WorkerHook


@dataclass(frozen=True, kw_only=True, slots=True)
class UploadWorkerConfig:
    """A WorkerConfig plus the repositories and services an upload needs."""

    worker: WorkerConfig
    job_repo: JobRepository
    document_repo: DocumentRepository
    vector_repo: VectorRepository
    services: DocumentServices
    logger: logging.Logger | None = None
    hooks: Sequence[WorkerHook] | None = None  # None: the default hooks (see BaseWorker)


class UploadWorker(BaseWorker):
    """Turns uploaded files into chunks in the vector store, reporting progress on the job."""

    job_types: ClassVar[frozenset[str] | None] = frozenset({UPLOAD_JOB_TYPE})
    default_concurrency: ClassVar[int] = CPU_BOUND_CONCURRENCY  # parsing and the model: CPU

    def __init__(self, config: UploadWorkerConfig) -> None:
        super().__init__(config.worker, job_repo=config.job_repo, logger=config.logger,
                         hooks=config.hooks)
        self.upload_config = config
        self.pipeline = UploadPipeline(config.services, config.document_repo, config.vector_repo)

    async def start(self) -> None:
        # The parser's children start while the worker starts and fetches its first jobs.
        self.upload_config.services.parser.start()
        await super().start()

    async def process(self, job: Job, ctx: JobContext) -> Any:
        payload = UploadJobPayload.parse(job.payload)
        # Every write of this attempt is fenced: once another worker takes the job over, the
        # registry refuses them and the vector store is not written (ingest/fencing.py).
        fence = await claim_fence(ctx, self.upload_config.document_repo)
        result = await self.pipeline.run(payload, job_id=job.id, progress=ctx.progress,
                                         fence=fence)
        ctx.logger.info(
            "ingested %s: %d chunks in %d ms",
            payload.filename,
            result.chunk_count,
            result.processing_time_ms,
        )
        outcome = result.model_dump()
        record = await self.upload_config.document_repo.get(result.document_id)
        children = await enqueue_attachments(
            self.upload_config.job_repo, job, payload, record.metadata if record else {})
        if children:  # an email's attachments (ingest/attachments.py)
            outcome["children"] = children
        return outcome
