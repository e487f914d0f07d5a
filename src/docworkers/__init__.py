"""docworkers: reliable Redis background jobs that turn documents into searchable knowledge."""

from docworkers.embedded import EmbeddedRedis
from docworkers.errors import (
    ConfigurationError,
    DocumentError,
    DocworkersError,
    InvalidPayloadError,
    JobCancelledError,
    LeaseLostError,
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
