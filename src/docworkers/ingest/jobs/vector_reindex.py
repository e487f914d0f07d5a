"""The ``vector_reindex`` job: re-chunk and re-embed a collection with no search downtime.

1. Take the collection's lock (owned by the job id) and reserve a physical version for this
   attempt alone, ``<collection>--v<N>``: above the one searches use and every one reserved
   before (a counter in Redis), so no two attempts ever build into, switch to or drop the same
   collection.
2. Run the upload pipeline (parse, chunk, embed, enrich, store) on every completed document's
   stored file (``DocumentRecord.file_path``), with its vector and keyword index writes sent to
   the new physical collection and its registry writes held back. Searches keep using the old
   collection.
3. Catch up with what changed meanwhile (documents uploaded, re-uploaded or deleted), then
   switch the alias in one fenced Redis write: from now on searches use the new collection.
4. After a short drain, catch up once more, apply the held-back registry writes (chunk counts,
   metadata), drop the older physical collection(s), and catch up a last time.

Every step can run twice: a rerun builds the next version and, once it has switched, drops the
older ones (the live one before it and whatever an unfinished attempt left). A collection is
dropped from the keyword index before the vector store, so the keyword index never keeps one the
vector store lists no more (ingest/keyword_side.py). Documents are
checked before anything is built: one without a stored file fails the job and nothing changes.

A job attempt's writes are fenced (ingest/fencing.py): the lock, the version, the switch and the
registry writes are refused once a newer attempt of the job claimed the fence, and every vector
store write is preceded by a check that the attempt still owns the job. A stale attempt that
got past such a check can only write into, or drop, its own version (never switched to: the
switch is fenced) or versions older than one it switched to itself.

Uploads running meanwhile: an upload stores its chunks in the physical collection the alias
names at its store stage, marks the document completed, then resolves the alias again. If the
alias still names the same collection, this reindex's catch-ups after the switch see the
completed document and rebuild it; if it moved, the upload stores its chunks in the new
collection itself (:meth:`UploadPipeline._follow_switch`). Either way no upload is lost. What
remains: an upload whose first write lands in the old collection after it was dropped recreates
it, and leaves it behind empty (dropped by the next reindex or ``collection_delete``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from docworkers.errors import ConfigurationError, InvalidPayloadError, PermanentJobError
from docworkers.ingest.aliases import (
    CollectionAliases,
    physical_collections,
    physical_version,
    versioned_name,
)
from docworkers.ingest.defaults import DEFAULT_OCR
from docworkers.ingest.document_repository import (
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
)
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.jobs.common import (
    DocumentJobConfig,
    DocumentJobWorker,
    JobPayload,
    LogicalCollection,
    Progress,
    collection_documents,
    no_progress,
)
from docworkers.ingest.jobs.kinds import VECTOR_REINDEX_JOB_TYPE
from docworkers.ingest.jobs.rebuild_views import (
    HeldBackRegistry,
    RedirectedKeywords,
    RedirectedVectors,
)
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.ingest.payload import ChunkingOptions, UploadJobPayload
from docworkers.ingest.pipeline import DocumentServices, UploadPipeline
from docworkers.ingest.vector_repository import VectorRepository
from docworkers.queue.job import Job
from docworkers.workers.context import JobContext

__all__ = [
    "VECTOR_REINDEX_JOB_TYPE",
    "ReindexSourceError",
    "VectorReindex",
    "VectorReindexPayload",
    "VectorReindexResult",
    "VectorReindexWorker",
]

CATCH_UP_ROUNDS = 3  # before the switch; the registry rarely changes that fast
log = logging.getLogger("docworkers.ingest.jobs")


class ReindexSourceError(PermanentJobError):
    """A document's stored file is missing, unknown or changed: it cannot be re-chunked."""

    code = "reindex_source"


class VectorReindexPayload(JobPayload, ChunkingOptions):
    """The collection and its new chunking. ``extract_metadata`` / ``num_questions`` left out
    (None) keep each document's enrichment as it was (read from its stored chunks)."""

    collection: LogicalCollection
    extract_metadata: bool | None = None
    num_questions: int | None = Field(default=None, ge=0, le=10)

    def check(self) -> None:
        self.upload_payload(DocumentRecord(document_id="check", collection=self.collection,
                                           filename="check.txt", status=DocumentStatus.COMPLETED,
                                           file_path="check.txt"), {})

    def upload_payload(self, record: DocumentRecord, stored: Mapping[str, Any]
                       ) -> UploadJobPayload:
        """The upload that rebuilds ``record``; ``stored`` is its first chunk's metadata. OCR
        reads the pages the upload had it read (``ocr_mode`` in the document's metadata)."""
        extract = self.extract_metadata
        if extract is None:
            extract = "keywords" in stored
        questions = self.num_questions
        if questions is None:
            asked = str(stored.get("questions") or "")
            questions = max(1, min(10, asked.count("?"))) if asked else 0
        return UploadJobPayload.parse({
            "filename": record.filename, "file_path": record.file_path,
            "collection": record.collection, "chunking_strategy": self.chunking_strategy,
            "chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap,
            "extract_metadata": extract, "num_questions": questions,
            "ocr": record.metadata.get("ocr_mode", DEFAULT_OCR),
        })


class VectorReindexResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    collection: str
    previous: str  # the physical collection searches used before
    physical: str  # the one they use now
    documents: int
    chunks: int
    dropped: list[str] = Field(default_factory=list)
    processing_time_ms: int = 0


class VectorReindex:
    """Runs one reindex. ``drain_seconds`` is the pause between the switch and dropping the old
    collection, for searches and writes that resolved the old name just before the switch."""

    def __init__(self, services: DocumentServices, documents: DocumentRepository,
                 vectors: VectorRepository, *, drain_seconds: float = 1.0) -> None:
        if not drain_seconds >= 0:
            raise ConfigurationError("drain_seconds", f"must be >= 0, got {drain_seconds!r}")
        self.services = services
        self.documents = documents
        self.vectors = vectors
        self.aliases = CollectionAliases.for_documents(documents)
        self.keywords = LexicalIndex.for_documents(documents)
        self.drain_seconds = drain_seconds

    async def run(self, payload: VectorReindexPayload, *, job_id: str,
                  progress: Progress = no_progress, fence: AttemptFence | None = None
                  ) -> VectorReindexResult:
        started = time.perf_counter()
        logical = payload.collection
        window = self.services.embedder.max_tokens
        if payload.chunk_size > window:
            raise InvalidPayloadError(f"chunk_size: {payload.chunk_size} tokens exceeds the "
                                      f"embedding model's window of {window} text tokens")
        async with self.aliases.lock(logical, owner=job_id, fence=fence):
            await progress(2, "planning the new collection")
            current = await self.aliases.resolve(logical)
            version = await self.aliases.reserve_version(
                logical, physical_version(logical, current) or 0, owner=job_id, fence=fence)
            try:
                target = versioned_name(logical, version)
            except ConfigurationError as exc:
                raise InvalidPayloadError(f"collection: {exc.problem}") from exc
            # Reserved for this attempt alone: anything under that name is a leftover (a
            # version counter lost with its Redis data).
            await self._drop(target)
            build = _Build(self, payload, job_id, progress, current=current, target=target,
                           fence=fence)
            switched = False
            try:
                records = await collection_documents(self.documents, logical)
                _check_sources(records)
                await build.sync(records, 5, 85)
                for _ in range(CATCH_UP_ROUNDS):
                    if not await build.sync(await self._records(logical), 85, 87):
                        break
                await progress(88, f"switching {logical} to {target}")
                await self.aliases.switch(logical, target, owner=job_id, fence=fence)
                switched = True
            finally:
                if not switched:
                    await asyncio.shield(self._drop_quietly(target))
            await asyncio.sleep(self.drain_seconds)
            await build.sync(await self._records(logical), 89, 91)
            await progress(92, "updating the document registry")
            await build.commit()
            await progress(95, "dropping the old collection")
            dropped = []
            for name in await asyncio.to_thread(physical_collections, self.vectors, logical):
                # Only versions below ours: a later reindex's collection is never ours to drop.
                if (physical_version(logical, name) or 0) >= version:
                    continue
                if fence is not None:
                    await fence.check(f"dropping {name}")
                if await self._drop(name):
                    dropped.append(name)
            if await build.sync(await self._records(logical), 96, 98):
                await build.commit()
        await progress(100, f"reindexed {len(build.staged)} document(s) into {target}")
        return VectorReindexResult(
            collection=logical, previous=current, physical=target,
            documents=len(build.staged), chunks=sum(s.chunks for s in build.staged.values()),
            dropped=dropped, processing_time_ms=round((time.perf_counter() - started) * 1000),
        )

    async def _records(self, collection: str) -> list[DocumentRecord]:
        return await collection_documents(self.documents, collection)

    async def _drop(self, physical: str) -> bool:
        """Drop ``physical`` from the keyword index, then from the vector store; True if the
        vector store had it."""
        await self.keywords.drop_collection(physical)
        return await asyncio.to_thread(self.vectors.delete_collection, physical)

    async def _drop_quietly(self, target: str) -> None:
        """Drop this attempt's unfinished version. No fence check: the version was reserved
        for this attempt alone and never switched to, so even a stale attempt may drop it."""
        try:
            await self._drop(target)
        except Exception as exc:  # the next attempt drops it first anyway
            log.warning("could not drop the unfinished collection %s: %s", target, exc)


@dataclass(slots=True)
class _Staged:
    updated_at: float  # the registry's updated_at when the document was rebuilt
    chunks: int
    fields: dict[str, Any]  # the registry writes held back until the switch


@dataclass(slots=True)
class _Build:
    """The documents rebuilt into ``target`` so far, and their held-back registry writes."""

    reindex: VectorReindex
    payload: VectorReindexPayload
    job_id: str
    progress: Progress
    current: str
    target: str
    fence: AttemptFence | None = None
    staged: dict[str, _Staged] = field(default_factory=dict)
    committed: set[str] = field(default_factory=set)

    async def sync(self, records: Sequence[DocumentRecord], low: int, high: int) -> int:
        """Rebuild completed documents not rebuilt yet or changed since, drop the deleted
        ones from the target; returns how many documents that touched. Progress goes from
        ``low`` to ``high`` percent."""
        present = {r.document_id for r in records}
        changed = [r for r in records if r.status == DocumentStatus.COMPLETED
                   and (r.document_id not in self.staged
                        or self.staged[r.document_id].updated_at != r.updated_at)]
        gone = [document_id for document_id in self.staged if document_id not in present]
        for n, record in enumerate(changed):
            percent = low + (high - low) * n // len(changed)
            await self.progress(percent, f"re-embedding {record.filename} "
                                         f"({n + 1}/{len(changed)})")

            async def stage(_: int, message: str, percent: int = percent,
                            name: str = record.filename) -> None:
                await self.progress(percent, f"{name}: {message}")  # renews the job's lease

            self.staged[record.document_id] = await self._rebuild(record, stage)
            self.committed.discard(record.document_id)
        for document_id in gone:
            await self.reindex.keywords.remove_document(self.target, document_id,
                                                        fence=self.fence)
            if self.fence is not None:
                await self.fence.check(f"removing {document_id} from {self.target}")
            await asyncio.to_thread(self.reindex.vectors.delete_document, self.target,
                                    document_id)
            del self.staged[document_id]
        return len(changed) + len(gone)

    async def _rebuild(self, record: DocumentRecord, progress: Progress) -> _Staged:
        _check_sources([record])
        vectors = self.reindex.vectors
        first = await asyncio.to_thread(vectors.document_chunks, self.current,
                                        record.document_id)
        upload = self.payload.upload_payload(record, first[0][2] if first else {})
        registry = HeldBackRegistry(self.reindex.documents)
        live = {record.collection, self.current}
        pipeline = UploadPipeline(self.reindex.services, registry,
                                  RedirectedVectors(vectors, live, self.target),
                                  RedirectedKeywords(self.reindex.keywords, live, self.target))
        result = await pipeline.run(upload, job_id=self.job_id, progress=progress,
                                    fence=self.fence)
        if result.document_id != record.document_id:
            await self.reindex.keywords.remove_document(self.target, result.document_id)
            await asyncio.to_thread(vectors.delete_document, self.target, result.document_id)
            raise ReindexSourceError(
                f"{record.filename}: the stored file {record.file_path} no longer holds the "
                f"bytes of document {record.document_id}; re-upload the document"
            )
        return _Staged(record.updated_at, result.chunk_count, registry.fields)

    async def commit(self) -> None:
        """Apply the held-back registry writes of documents that still exist; their new
        ``updated_at`` is ours, not a change to catch up with."""
        documents = self.reindex.documents
        for document_id, staged in self.staged.items():
            if document_id in self.committed or await documents.get(document_id) is None:
                continue
            await documents.update(document_id, fence=self.fence, **staged.fields)
            record = await documents.get(document_id)
            if record is not None:
                staged.updated_at = record.updated_at
            self.committed.add(document_id)


def _check_sources(records: Sequence[DocumentRecord]) -> None:
    missing = [r for r in records if r.status == DocumentStatus.COMPLETED
               and not (r.file_path and Path(r.file_path).is_file())]
    if missing:
        listed = ", ".join(f"{r.filename} ({r.document_id}: "
                           f"{r.file_path or 'no stored file recorded'})" for r in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ReindexSourceError(
            f"{len(missing)} document(s) cannot be re-read: {listed}{more}. Re-upload them "
            "(or delete them) and run the reindex again; nothing was changed"
        )


class VectorReindexWorker(DocumentJobWorker):
    """Runs ``vector_reindex`` jobs."""

    job_types: ClassVar[frozenset[str] | None] = frozenset({VECTOR_REINDEX_JOB_TYPE})

    def __init__(self, config: DocumentJobConfig, *, drain_seconds: float = 1.0) -> None:
        super().__init__(config)
        services = config.require_services(VECTOR_REINDEX_JOB_TYPE)
        self.reindex = VectorReindex(services, self.documents, self.vectors,
                                     drain_seconds=drain_seconds)

    async def process(self, job: Job, ctx: JobContext) -> Any:
        payload = VectorReindexPayload.parse(job.payload)
        result = await self.reindex.run(payload, job_id=job.id, progress=ctx.progress,
                                        fence=await self.fence(ctx))
        ctx.logger.info("reindexed %s into %s: %d documents, %d chunks", payload.collection,
                        result.physical, result.documents, result.chunks)
        return result.model_dump()
