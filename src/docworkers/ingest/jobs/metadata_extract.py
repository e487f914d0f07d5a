"""The ``metadata_extract`` job: enrich documents that are already stored, without re-embedding.

The document's text is rebuilt from its stored chunks (their character offsets undo overlaps),
the enricher computes document metadata (title, language, word count ...), keywords per chunk
and, if asked, questions per chunk, and the results are merged into the chunks' metadata and
the document's registry entry, under the same keys an upload with ``extract_metadata`` /
``num_questions`` writes. The enricher is deterministic, so a rerun writes the same values.
A job attempt's writes are fenced (ingest/fencing.py): one that lost its job writes nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from docworkers.errors import PermanentJobError, RetryableJobError
from docworkers.ingest.aliases import CollectionAliases
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.document_repository import (
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
)
from docworkers.ingest.enrich import Enricher
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.jobs.common import (
    DocumentId,
    DocumentJobConfig,
    DocumentJobWorker,
    DocumentNotFoundError,
    JobPayload,
    LogicalCollection,
    Progress,
    collection_documents,
    no_progress,
)
from docworkers.ingest.jobs.kinds import METADATA_EXTRACT_JOB_TYPE
from docworkers.ingest.vector_repository import VectorRepository
from docworkers.queue.job import Job
from docworkers.workers.context import JobContext

__all__ = [
    "METADATA_EXTRACT_JOB_TYPE",
    "MetadataExtractPayload",
    "MetadataExtractResult",
    "MetadataExtractWorker",
    "MetadataExtractor",
]

KEYWORDS_PER_CHUNK = 5  # as the upload pipeline
# What the file itself may state; the enricher prefers a declared title or language.
_DECLARED = ("title", "author", "created", "modified", "language")

ChunkRow = tuple[str, str, dict[str, Any]]


class MetadataExtractPayload(JobPayload):
    """One document (``document_id``) or every completed document of a ``collection``."""

    document_id: DocumentId | None = None
    collection: LogicalCollection | None = None
    extract_metadata: bool = True
    num_questions: int = Field(default=0, ge=0, le=10)

    @model_validator(mode="after")
    def _target(self) -> Self:
        if (self.document_id is None) == (self.collection is None):
            raise ValueError("give exactly one of document_id and collection")
        if not self.extract_metadata and not self.num_questions:
            raise ValueError("nothing to do: set extract_metadata or num_questions")
        return self


class SkippedDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    document_id: str
    reason: str


class MetadataExtractResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    documents: int  # documents enriched
    chunks: int  # chunks whose metadata was updated
    skipped: list[SkippedDocument] = Field(default_factory=list)
    titles: dict[str, str] = Field(default_factory=dict)  # document id -> title found


class MetadataExtractor:
    """Runs one metadata extraction over stored chunks."""

    def __init__(self, documents: DocumentRepository, vectors: VectorRepository,
                 enricher: Enricher) -> None:
        self.documents = documents
        self.vectors = vectors
        self.enricher = enricher
        self.aliases = CollectionAliases.for_documents(documents)

    async def run(self, payload: MetadataExtractPayload, *, progress: Progress = no_progress,
                  fence: AttemptFence | None = None) -> MetadataExtractResult:
        await progress(2, "finding the documents")
        records, skipped = await self._documents(payload)
        enriched = chunks = 0
        titles: dict[str, str] = {}
        for n, record in enumerate(records):
            await progress(5 + 90 * n // len(records),
                           f"enriching {record.filename} ({n + 1}/{len(records)})")
            physical = await self.aliases.resolve(record.collection)
            stored = await asyncio.to_thread(self.vectors.document_chunks, physical,
                                             record.document_id)
            if not stored:
                skipped.append(SkippedDocument(document_id=record.document_id,
                                               reason="no chunks in the vector store"))
                continue
            updates, found = await asyncio.to_thread(self._enrich, record, stored, payload)
            if fence is not None:
                await fence.check(f"updating the chunks of {record.document_id}")
            chunks += await asyncio.to_thread(self.vectors.update_chunk_metadata, physical,
                                              [row[0] for row in stored], updates)
            enriched += 1
            if payload.extract_metadata:
                await self.documents.update(record.document_id, fence=fence,
                                            metadata={**record.metadata, **found},
                                            enrichment_errors=[])
                titles[record.document_id] = str(found.get("title", ""))
        await progress(100, f"enriched {enriched} document(s), {chunks} chunk(s)")
        return MetadataExtractResult(documents=enriched, chunks=chunks,
                                     skipped=skipped, titles=titles)

    async def _documents(self, payload: MetadataExtractPayload
                         ) -> tuple[list[DocumentRecord], list[SkippedDocument]]:
        if payload.document_id is not None:
            record = await self.documents.get(payload.document_id)
            if record is None:
                raise DocumentNotFoundError(f"document_id: no document {payload.document_id!r} "
                                            "in the registry")
            if record.status == DocumentStatus.FAILED:
                raise PermanentJobError(f"document {record.filename!r} failed to upload "
                                        f"({record.error_code}); it has no chunks to enrich")
            if record.status != DocumentStatus.COMPLETED:
                raise RetryableJobError(f"document {record.filename!r} is still being "
                                        "ingested; its chunks are enriched once it completes")
            return [record], []
        assert payload.collection is not None
        records: list[DocumentRecord] = []
        skipped: list[SkippedDocument] = []
        for record in await collection_documents(self.documents, payload.collection):
            if record.status == DocumentStatus.COMPLETED:
                records.append(record)
            else:
                skipped.append(SkippedDocument(document_id=record.document_id,
                                               reason=f"status is {record.status.value}"))
        return records, skipped

    def _enrich(self, record: DocumentRecord, stored: Sequence[ChunkRow],
                payload: MetadataExtractPayload
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Per-chunk metadata to merge, and the document metadata found (CPU-bound)."""
        declared = {k: record.metadata[k] for k in _DECLARED if k in record.metadata}
        if record.page_count is not None:
            declared["page_count"] = record.page_count
        doc = ParsedDocument(filename=record.filename, kind="text",
                             pages=[Page(rejoin(stored))], metadata=declared)
        found = {k: v for k, v in self.enricher.document_metadata(doc).items() if v is not None}
        language = str(found.get("language") or "en")
        # The upload pipeline stores document metadata on every chunk, renaming the two keys
        # that would clash with the chunk's own.
        on_chunks = {f"doc_{k}" if k in ("filename", "collection") else k: v
                     for k, v in found.items()} if payload.extract_metadata else {}
        updates = []
        for _, text, _ in stored:
            keywords = self.enricher.keywords(text, language, KEYWORDS_PER_CHUNK)
            item: dict[str, Any] = dict(on_chunks)
            if payload.extract_metadata:
                item["keywords"] = keywords
            if payload.num_questions:
                item["questions"] = self.enricher.questions(text, payload.num_questions,
                                                            keywords, language)
            updates.append(item)
        return updates, found


def rejoin(stored: Sequence[ChunkRow]) -> str:
    """The document text rebuilt from its chunks (in order), using their character offsets
    to drop overlaps; the whitespace between chunks, which chunkers trim, becomes newlines."""
    parts: list[str] = []
    end = 0
    for _, text, metadata in stored:
        start, stop = metadata.get("start_char"), metadata.get("end_char")
        if not isinstance(start, int) or not isinstance(stop, int):
            parts.append(("\n\n" if parts else "") + text)
            continue
        if parts and start < end:
            text = text[end - start:]
        elif parts:
            parts.append("\n" if start - end == 1 else "\n\n")
        parts.append(text)
        end = max(end, stop)
    return "".join(parts)


class MetadataExtractWorker(DocumentJobWorker):
    """Runs ``metadata_extract`` jobs with the services' enricher."""

    job_types: ClassVar[frozenset[str] | None] = frozenset({METADATA_EXTRACT_JOB_TYPE})

    def __init__(self, config: DocumentJobConfig) -> None:
        super().__init__(config)
        enricher = config.require_services(METADATA_EXTRACT_JOB_TYPE).enricher
        self.extractor = MetadataExtractor(self.documents, self.vectors, enricher)

    async def process(self, job: Job, ctx: JobContext) -> Any:
        payload = MetadataExtractPayload.parse(job.payload)
        result = await self.extractor.run(payload, progress=ctx.progress,
                                          fence=await self.fence(ctx))
        return result.model_dump()
