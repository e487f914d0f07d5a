"""docworkers: reliable Redis background jobs that turn documents into searchable knowledge.

Every public name is importable from here, but each is loaded on first use: ``import
docworkers`` costs nothing, the job queue and worker framework need only redis-py, and the
upload pipeline's names (which need the ``ingest`` extra) load the ML stack only when asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docworkers.embedded import EmbeddedRedis
    from docworkers.errors import (
        ConfigurationError,
        DocumentError,
        DocworkersError,
        InvalidPayloadError,
        JobCancelledError,
        LeaseLostError,
        MissingExtraError,
        PermanentJobError,
        RepositoryConnectionError,
        RepositoryError,
        RetryableJobError,
    )
    from docworkers.ingest.document_repository import DocumentRecord, DocumentRepository
    from docworkers.ingest.payload import UPLOAD_JOB_TYPE, UploadJobPayload, UploadJobResult
    from docworkers.ingest.pipeline import DocumentServices, UploadPipeline
    from docworkers.ingest.search import SearchService
    from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
    from docworkers.ingest.vector_repository import SearchHit, VectorRepository
    from docworkers.queue import (
        Job,
        JobError,
        JobFilter,
        JobRepository,
        JobSpec,
        JobStatus,
        QueueStats,
        RedisJobRepository,
        RepositoryConfig,
    )
    from docworkers.runtime import Runtime
    from docworkers.settings import Settings
    from docworkers.workers import (
        BaseWorker,
        FunctionWorker,
        JobContext,
        Worker,
        WorkerConfig,
        WorkerPool,
        WorkerStats,
        backoff_delay,
        default_worker_config,
    )

__version__ = "0.1.0"

#: Where each public name lives.
_HOMES: dict[str, str] = {
    **dict.fromkeys(("ConfigurationError", "DocumentError", "DocworkersError",
                     "InvalidPayloadError", "JobCancelledError", "LeaseLostError",
                     "MissingExtraError", "PermanentJobError", "RepositoryConnectionError",
                     "RepositoryError", "RetryableJobError"), "docworkers.errors"),
    "EmbeddedRedis": "docworkers.embedded",
    **dict.fromkeys(("Job", "JobError", "JobFilter", "JobRepository", "JobSpec", "JobStatus",
                     "QueueStats", "RedisJobRepository", "RepositoryConfig"), "docworkers.queue"),
    **dict.fromkeys(("BaseWorker", "FunctionWorker", "JobContext", "Worker", "WorkerConfig",
                     "WorkerPool", "WorkerStats", "backoff_delay", "default_worker_config"),
                    "docworkers.workers"),
    "Settings": "docworkers.settings",
    "Runtime": "docworkers.runtime",
    **dict.fromkeys(("DocumentRecord", "DocumentRepository"),
                    "docworkers.ingest.document_repository"),
    **dict.fromkeys(("UPLOAD_JOB_TYPE", "UploadJobPayload", "UploadJobResult"),
                    "docworkers.ingest.payload"),
    **dict.fromkeys(("DocumentServices", "UploadPipeline"), "docworkers.ingest.pipeline"),
    "SearchService": "docworkers.ingest.search",
    **dict.fromkeys(("UploadWorker", "UploadWorkerConfig"), "docworkers.ingest.upload_worker"),
    **dict.fromkeys(("SearchHit", "VectorRepository"), "docworkers.ingest.vector_repository"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'docworkers' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


__all__ = [
    "UPLOAD_JOB_TYPE",
    "BaseWorker",
    "ConfigurationError",
    "DocumentError",
    "DocumentRecord",
    "DocumentRepository",
    "DocumentServices",
    "DocworkersError",
    "EmbeddedRedis",
    "FunctionWorker",
    "InvalidPayloadError",
    "Job",
    "JobCancelledError",
    "JobContext",
    "JobError",
    "JobFilter",
    "JobRepository",
    "JobSpec",
    "JobStatus",
    "LeaseLostError",
    "MissingExtraError",
    "PermanentJobError",
    "QueueStats",
    "RedisJobRepository",
    "RepositoryConfig",
    "RepositoryConnectionError",
    "RepositoryError",
    "RetryableJobError",
    "Runtime",
    "SearchHit",
    "SearchService",
    "Settings",
    "UploadJobPayload",
    "UploadJobResult",
    "UploadPipeline",
    "UploadWorker",
    "UploadWorkerConfig",
    "VectorRepository",
    "Worker",
    "WorkerConfig",
    "WorkerPool",
    "WorkerStats",
    "backoff_delay",
    "default_worker_config",
]
