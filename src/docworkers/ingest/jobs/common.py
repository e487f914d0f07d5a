"""What every document job shares: payload base class, worker configuration, base worker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from docworkers.errors import ConfigurationError, InvalidPayloadError, PermanentJobError
from docworkers.ingest.aliases import check_logical_name
from docworkers.ingest.document_repository import DocumentRecord, DocumentRepository
from docworkers.ingest.fencing import AttemptFence, claim_fence
from docworkers.ingest.payload import describe_validation_error
from docworkers.ingest.vector_repository import VectorRepository
from docworkers.queue.protocol import JobRepository
from docworkers.workers.base import BaseWorker
from docworkers.workers.config import CPU_BOUND_CONCURRENCY, WorkerConfig
from docworkers.workers.context import JobContext

if TYPE_CHECKING:  # the pipeline imports this package's aliases: no import cycle at run time
    from docworkers.ingest.pipeline import DocumentServices

Progress = Callable[[int, str], Awaitable[None]]
_PAGE = 1000


def _logical_collection(value: str) -> str:
    try:
        return check_logical_name(value)
    except ConfigurationError as exc:
        raise ValueError(exc.problem) from exc


LogicalCollection = Annotated[str, AfterValidator(_logical_collection)]
DocumentId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]


class JobPayload(BaseModel):
    """A job payload: unknown fields are rejected, so a misspelt option is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @classmethod
    def parse(cls, data: Any) -> Self:
        """Validate a job payload; errors are InvalidPayloadError naming each bad field."""
        if not isinstance(data, dict):
            raise InvalidPayloadError(f"payload must be a JSON object, got {type(data).__name__}")
        try:
            payload = cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidPayloadError(describe_validation_error(exc)) from None
        payload.check()
        return payload

    def check(self) -> None:
        """Checks that need other models (raise InvalidPayloadError); none by default."""


class DocumentNotFoundError(PermanentJobError):
    """The job names a document the registry does not know."""

    code = "document_not_found"


@dataclass(frozen=True, kw_only=True, slots=True)
class DocumentJobConfig:
    """A WorkerConfig plus the repositories a document job needs, as in UploadWorkerConfig.

    ``services`` (parser, model, enricher) is needed only by the jobs that read documents or
    compute metadata (vector_reindex, metadata_extract); the delete jobs run without it, so a
    process that only deletes never loads the model.
    """

    worker: WorkerConfig
    job_repo: JobRepository
    document_repo: DocumentRepository
    vector_repo: VectorRepository
    services: DocumentServices | None = None
    logger: logging.Logger | None = None

    def require_services(self, job_type: str) -> DocumentServices:
        if self.services is None:
            raise ConfigurationError(
                "services", f"the {job_type} worker needs DocumentServices (parser, embedding "
                "model, enricher); pass services=DocumentServices.local(embedder)",
            )
        return self.services


class DocumentJobWorker(BaseWorker):
    """A BaseWorker with the document registry and the vector store of its config."""

    default_concurrency: ClassVar[int] = CPU_BOUND_CONCURRENCY  # they parse and embed

    def __init__(self, config: DocumentJobConfig) -> None:
        super().__init__(config.worker, job_repo=config.job_repo, logger=config.logger)
        self.job_config = config
        self.documents = config.document_repo
        self.vectors = config.vector_repo

    async def fence(self, ctx: JobContext) -> AttemptFence:
        """Claim this attempt's fence before its first write (see ingest/fencing.py): once
        another worker takes the job over, every write of this attempt is refused."""
        return await claim_fence(ctx, self.documents)


async def collection_documents(documents: DocumentRepository, collection: str
                               ) -> list[DocumentRecord]:
    """Every registered document of ``collection``, newest first."""
    found: list[DocumentRecord] = []
    while page := await documents.list_documents(collection, limit=_PAGE, offset=len(found)):
        found += page
        if len(page) < _PAGE:
            break
    return found


async def no_progress(percent: int, message: str) -> None:
    return None
