"""register -> parse -> chunk -> embed -> store -> finalize, with progress at each stage.

Every side effect is idempotent, so a rerun after a crash at any instruction converges: the
document id comes from the content, chunk ids from (document id, index), chunks are upserted
and leftovers of an earlier version deleted, and the registry record is overwritten.

The payload names a logical collection; the chunks go to the physical Chroma collection its
alias names when they are stored (see :mod:`docworkers.ingest.aliases`). A
``vector_reindex`` may switch the alias while an upload runs, so after marking the document
completed the pipeline resolves the alias again and, if it moved, stores the chunks in the new
physical collection too: whichever side acts last, the document ends up in the collection that
searches use (see :meth:`UploadPipeline._follow_switch`). Uploads do not take the collection's
rebuild lock: it is exclusive and held for a whole reindex, so they would wait minutes.

Each document's chunks go to the vector store and then, with the same ids and texts, to the
collection's keyword index (see :mod:`docworkers.ingest.keyword_side` for the order of the two
sides): a crash between them is repaired by the job's rerun, which writes both again.

A job attempt passes its fence (:mod:`docworkers.ingest.fencing`): its registry writes are
refused once a newer attempt claimed the fence, and each vector store write is preceded by a
check that the attempt still owns its job. An attempt that lost its job (LeaseLostError) records
nothing about the document; a cancelled one marks it cancelled, not failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from docworkers.errors import (
    ChunkTimeoutError,
    ConfigurationError,
    DocworkersError,
    EmbedTimeoutError,
    EnrichTimeoutError,
    InvalidPayloadError,
    JobCancelledError,
    LeaseLostError,
    NoExtractableTextError,
    StoreTimeoutError,
    error_code,
    error_stage,
)
from docworkers.ingest.aliases import resolve_collection
from docworkers.ingest.chunking import chunk_document
from docworkers.ingest.document import Chunk, ParsedDocument
from docworkers.ingest.document_repository import (
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
    content_hash,
    document_id_for,
)
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.embedding_batcher import BatchingEmbedder
from docworkers.ingest.embedding_cache import (
    AsyncEmbedder,
    CacheCounts,
    CachedEmbedder,
    EmbeddingCache,
    model_identity,
)
from docworkers.ingest.enrich import Enricher, LocalEnricher
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.heap import trim_heap
from docworkers.ingest.keyword_side import KeywordWrites, keyword_chunks
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.ingest.parsing import IsolatedParser
from docworkers.ingest.payload import UploadJobPayload, UploadJobResult
from docworkers.ingest.stage_limits import DEFAULT_STAGE_LIMITS, Deadline, StageLimits
from docworkers.ingest.stages import (
    Progress,
    StageTimer,
    StoredChunks,
    chunk_metadatas,
    embed_chunks,
    enrich_chunks,
    no_progress,
    too_slow,
)
from docworkers.ingest.vector_repository import VectorRepository, vector_store_breaker

Enrichment = tuple[list[dict[str, Any]], dict[str, Any], list[str]]  # see enrich_chunks

log = logging.getLogger("docworkers.ingest")


@dataclass(slots=True)
class DocumentServices:
    """The in-process services a worker process shares between its concurrent jobs."""

    parser: IsolatedParser
    embedder: Embedder  # the raw model: semantic chunking and queries
    batcher: BatchingEmbedder  # the same model, batched across concurrent jobs
    enricher: Enricher = field(default_factory=LocalEnricher)
    limits: StageLimits = DEFAULT_STAGE_LIMITS  # time limits of the stages after parsing
    cache: EmbeddingCache | None = None  # chunks embedded before are not embedded again
    cache_counts: CacheCounts = field(default_factory=CacheCounts)  # the process's totals

    @classmethod
    def local(
        cls,
        embedder: Embedder,
        *,
        parser: IsolatedParser | None = None,
        enricher: Enricher | None = None,
        limits: StageLimits = DEFAULT_STAGE_LIMITS,
        cache: EmbeddingCache | None = None,
    ) -> DocumentServices:
        return cls(
            parser=parser or IsolatedParser(),
            embedder=embedder,
            batcher=BatchingEmbedder(embedder),
            enricher=enricher or LocalEnricher(),
            limits=limits,
            cache=cache,
        )

    def job_embedder(self) -> AsyncEmbedder:
        """What one job embeds its chunks through: the cache (counting this job's hits) in
        front of the shared batcher, or the batcher alone without a cache."""
        if self.cache is None:
            return self.batcher
        return CachedEmbedder(self.batcher, self.cache, model_identity(self.embedder),
                              totals=self.cache_counts)

    async def aclose(self) -> None:
        await self.batcher.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        await asyncio.to_thread(self.parser.close)


class UploadPipeline:
    """Runs one upload end to end. Shared by the worker, the CLI and the benchmarks.

    ``keywords`` is the keyword index the chunks also go to: by default the collections' own
    (in the registry's Redis); a reindex passes one that writes into the version it builds."""

    def __init__(
        self, services: DocumentServices, documents: DocumentRepository, vectors: VectorRepository,
        keywords: KeywordWrites | None = None,
    ) -> None:
        self.services = services
        self.documents = documents
        self.vectors = vectors
        self.keywords = keywords or LexicalIndex.for_documents(documents)
        # One breaker per vector store process-wide: after repeated failures jobs stop hammering
        # it and are rescheduled (without using an attempt) until a probe call succeeds.
        self.vector_breaker = vector_store_breaker()

    async def run(
        self, payload: UploadJobPayload, *, job_id: str = "", progress: Progress | None = None,
        fence: AttemptFence | None = None,
    ) -> UploadJobResult:
        report = progress or no_progress
        started = time.perf_counter()
        timings: dict[str, int] = {}
        max_tokens = self.services.embedder.max_tokens
        if payload.chunk_size > max_tokens:
            raise InvalidPayloadError(
                f"chunk_size: {payload.chunk_size} tokens exceeds the embedding model's window "
                f"of {max_tokens} text tokens ({self.services.embedder.model_name}); longer "
                f"chunks would silently lose text. Use at most {max_tokens}."
            )
        path = payload.path
        if not path.is_file():
            raise InvalidPayloadError(f"file_path: no readable file at {str(path)!r}")
        file_hash = await asyncio.to_thread(content_hash, path)
        document_id = document_id_for(payload.collection, file_hash)
        await self.documents.register(
            DocumentRecord(
                document_id=document_id,
                collection=payload.collection,
                filename=payload.filename,
                status=DocumentStatus.PROCESSING,
                job_id=job_id,
                content_hash=file_hash,
                file_size=path.stat().st_size,
                file_path=str(path.expanduser().resolve()),  # vector_reindex reads it again
            ),
            fence=fence,
        )
        stage = StageTimer(timings)
        try:
            return await self._stages(payload, document_id, report, stage, started, fence)
        except Exception as exc:
            await record_failure(self.documents, document_id, exc, fence=fence,
                                 stage=stage.failed)
            raise
        finally:
            trim_heap()  # the document's text, chunks and vectors are free now (see heap.py)

    async def _stages(
        self,
        payload: UploadJobPayload,
        document_id: str,
        report: Progress,
        stage: StageTimer,
        started: float,
        fence: AttemptFence | None = None,
    ) -> UploadJobResult:
        """parse -> chunk -> embed and enrich -> store -> finalize, each timed by ``stage``."""
        path = payload.path
        timings = stage.timings
        with stage("parsing"):
            await report(10, "parsing document")
            doc = await self.services.parser.aparse(
                path, filename=payload.filename, max_pages=payload.max_pages, ocr=payload.ocr,
                attachments_dir=path.expanduser().resolve().parent,  # ingest/attachments.py
            )
        with stage("chunking"):
            await report(30, "chunking text")
            chunks = await asyncio.to_thread(self._chunk, doc, payload)
        with stage("embedding"):
            await report(50, f"generating embeddings for {len(chunks)} chunks")
            front = self.services.job_embedder()
            embeddings, (extra, doc_meta, problems) = await self._embed_and_enrich(
                doc, chunks, payload, report, front)
        with stage("storing"):
            await report(70, f"storing {len(chunks)} chunks in the vector database")
            metadatas = chunk_metadatas(payload, doc_meta, extra)
            stored = StoredChunks(document_id, chunks, embeddings, metadatas, fence)
            physical = await resolve_collection(self.documents, payload.collection)
            await self._store(physical, stored)
        with stage("finalizing"):
            await report(90, "finalizing document")
            elapsed = round((time.perf_counter() - started) * 1000)
            page_count = doc.metadata.get("page_count")
            await self.documents.update(
                document_id,
                fence=fence,
                status=DocumentStatus.COMPLETED,
                chunk_count=len(chunks),
                page_count=page_count,
                metadata={**doc.metadata, **doc_meta},
                timings_ms=timings,
                enrichment_errors=problems,
            )
            await self._follow_switch(payload.collection, physical, stored)
        await report(100, "upload completed")
        return UploadJobResult(
            document_id=document_id,
            chunk_count=len(chunks),
            collection=payload.collection,
            processing_time_ms=elapsed,
            page_count=page_count,
            truncated=doc.truncated,
            timings_ms=timings,
            enrichment_errors=problems,
            embedding_cache=front.counts.as_dict() if isinstance(front, CachedEmbedder) else {},
        )

    async def _embed_and_enrich(
        self,
        doc: ParsedDocument,
        chunks: Sequence[Chunk],
        payload: UploadJobPayload,
        report: Progress,
        front: AsyncEmbedder,
    ) -> tuple[np.ndarray, Enrichment]:
        """The chunks' embeddings within the embed time limit, and their enrichment, run in a
        thread alongside within its own limit (told to stop early if embedding fails)."""
        limits = self.services.limits
        enrich_deadline = Deadline(limits.enrich_timeout, lambda: EnrichTimeoutError(
            f"enrich_timeout: enrichment did not finish within {limits.enrich_timeout:g} s; "
            "the document is stored without the rest of it"))
        enrichment = asyncio.create_task(asyncio.to_thread(
            enrich_chunks, self.services.enricher, doc, chunks, payload, enrich_deadline))
        try:
            async with asyncio.timeout(limits.embed_timeout) as embed_limit:
                embeddings = await embed_chunks(front, chunks, report)
        except BaseException as exc:
            enrich_deadline.expire()  # not wanted any more: it stops at its next chunk
            if isinstance(exc, TimeoutError) and embed_limit.expired():
                raise EmbedTimeoutError(payload.filename, too_slow(
                    f"embedding {len(chunks)} chunks", limits.embed_timeout)) from None
            raise
        finally:
            enriched = await enrichment
        return embeddings, enriched

    async def _store(self, physical: str, stored: StoredChunks) -> None:
        if stored.fence is not None:  # see fencing.py: why a late write is harmless
            await stored.fence.check(f"storing the chunks of {stored.document_id} in {physical}")
        seconds = self.services.limits.store_timeout

        def too_slow() -> StoreTimeoutError:
            return StoreTimeoutError(
                f"store_timeout: storing {len(stored.chunks)} chunks of {stored.document_id} "
                f"did not finish within {seconds:g} s; the vector store is unusually slow")

        deadline = Deadline(seconds, too_slow)
        write = asyncio.to_thread(
            self.vector_breaker.call_sync,
            self.vectors.replace_document,
            physical,
            stored.document_id,
            stored.chunks,
            stored.embeddings,
            stored.metadatas,
            checkpoint=deadline.check,
        )
        try:
            # The write checks the deadline before each request; a request that hangs is
            # left to the store client's own timeout, and the job ends on time regardless.
            await asyncio.wait_for(write, seconds + 1.0)
        except TimeoutError:
            deadline.expire()  # the write stops before its next request
            raise too_slow() from None
        # Second, as every write (keyword_side.py); the index checks the fence in its script.
        await self.keywords.replace_document(
            physical, stored.document_id, keyword_chunks(stored.document_id, stored.chunks),
            fence=stored.fence)

    async def _follow_switch(self, collection: str, physical: str, stored: StoredChunks) -> None:
        """Store the chunks again if the collection's alias moved since they were stored.

        Called after the registry says "completed". If the alias still names ``physical``,
        any later switch belongs to a ``vector_reindex`` whose catch-up after its switch reads
        this completed record and rebuilds the document; if it moved, that reindex's last
        catch-up may have run already, so the chunks go to the new physical collection here
        (and leave the old one, which is being dropped).
        """
        current = await resolve_collection(self.documents, collection)
        if current == physical:
            return
        log.info("collection %s switched from %s to %s while document %s was stored; "
                 "storing it again", collection, physical, current, stored.document_id)
        await self._store(current, stored)
        if stored.fence is not None:
            await stored.fence.check(f"removing {stored.document_id} from {physical}")
        try:
            await self.keywords.remove_document(physical, stored.document_id,
                                                fence=stored.fence)
            await asyncio.to_thread(self.vectors.delete_document, physical, stored.document_id)
        except LeaseLostError:
            raise
        except DocworkersError as exc:  # the old version is dropped by the reindex anyway
            log.warning("could not remove document %s from %s: %s", stored.document_id,
                        physical, exc)

    def _chunk(self, doc: ParsedDocument, payload: UploadJobPayload) -> list[Chunk]:
        """The document's chunks within the chunk time limit; a document without any is an
        error (:class:`NoExtractableTextError`)."""
        seconds = self.services.limits.chunk_timeout
        deadline = Deadline(seconds, lambda: ChunkTimeoutError(payload.filename, too_slow(
            f"chunking {len(doc.text):,} characters", seconds)))
        try:
            chunks = chunk_document(
                doc,
                strategy=payload.chunking_strategy,
                chunk_size=payload.chunk_size,
                chunk_overlap=payload.chunk_overlap,
                embedder=self.services.embedder,
                checkpoint=deadline.check,  # stops the thread itself: nothing is left running
            )
        except ConfigurationError as exc:
            raise InvalidPayloadError(str(exc)) from exc
        if not chunks:
            raise NoExtractableTextError(payload.filename, "the document contains no text to index")
        return chunks


async def record_failure(
    documents: DocumentRepository,
    document_id: str | None,
    exc: BaseException,
    *,
    fence: AttemptFence | None = None,
    stage: str | None = None,
) -> None:
    """Mark the document failed with the error's stable code, message and stage (the error's
    own, else ``stage``: where the caller saw it escape), or cancelled (best effort, fenced).
    Nothing for LeaseLostError: the attempt lost its job, and the one that owns it now says
    how the document ends."""
    if not document_id or isinstance(exc, LeaseLostError):
        return
    try:
        if isinstance(exc, JobCancelledError):
            await documents.update(document_id, fence=fence, status=DocumentStatus.CANCELLED,
                                   error_code=None, error_message=None, failed_stage=None)
            return
        await documents.mark_failed(
            document_id,
            code=error_code(exc),
            message=str(exc),
            stage=error_stage(exc) or stage or "unknown",
            fence=fence,
        )
    except LeaseLostError as lost:  # a newer attempt owns the document now
        log.info("outcome of document %s not recorded: %s", document_id, lost)
    except DocworkersError as problem:
        log.warning("could not record failure of document %s: %s", document_id, problem)
