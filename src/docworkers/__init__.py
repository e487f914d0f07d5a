"""docworkers: reliable Redis background jobs that turn documents into searchable knowledge.

The names a user starts from are importable from here (``__all__``): the queue, the worker
framework, the root error, and the settings and runtime that wire the document pipeline. Every
other public name lives in its module (``docworkers.queue``, ``docworkers.workers``,
``docworkers.errors``, ``docworkers.ingest...``). Each name is loaded on first use: ``import
docworkers`` costs nothing, the queue and workers need only redis-py, and the pipeline's
names (which need the ``ingest`` extra) load the ML stack only when asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docworkers.errors import DocworkersError
    from docworkers.queue import (
        Job,
        JobStatus,
        RedisJobRepository,
        RepositoryConfig,
        SyncJobProducer,
    )
    from docworkers.runtime import Runtime
    from docworkers.settings import Settings
    from docworkers.workers import (
        BaseWorker,
        FunctionWorker,
        JobContext,
        WorkerConfig,
        WorkerPool,
    )

__version__ = "0.1.0"

#: Where each exported name lives.
_HOMES: dict[str, str] = {
    "DocworkersError": "docworkers.errors",
    **dict.fromkeys(("Job", "JobStatus", "RedisJobRepository", "RepositoryConfig",
                     "SyncJobProducer"), "docworkers.queue"),
    **dict.fromkeys(("BaseWorker", "FunctionWorker", "JobContext", "WorkerConfig",
                     "WorkerPool"), "docworkers.workers"),
    "Settings": "docworkers.settings",
    "Runtime": "docworkers.runtime",
}

#: Names this package exported before it kept to the ones above: they still work, loaded from
#: their modules, so older code runs unchanged; new code imports them from there.
_FORMER: dict[str, str] = {
    **dict.fromkeys(("ConfigurationError", "DocumentError", "InvalidPayloadError",
                     "JobCancelledError", "LeaseLostError", "MissingExtraError",
                     "PermanentJobError", "RepositoryConnectionError", "RepositoryError",
                     "RetryableJobError"), "docworkers.errors"),
    "EmbeddedRedis": "docworkers.embedded",
    **dict.fromkeys(("JobFilter", "JobRepository", "JobSpec", "QueueStats"), "docworkers.queue"),
    **dict.fromkeys(("Worker", "WorkerStats", "backoff_delay", "default_worker_config"),
                    "docworkers.workers"),
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
    home = _HOMES.get(name) or _FORMER.get(name)
    if home is None:
        raise AttributeError(f"module 'docworkers' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "BaseWorker",
    "DocworkersError",
    "FunctionWorker",
    "Job",
    "JobContext",
    "JobStatus",
    "RedisJobRepository",
    "RepositoryConfig",
    "Runtime",
    "Settings",
    "SyncJobProducer",
    "WorkerConfig",
    "WorkerPool",
]
