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

A job attempt passes its fence (:mod:`docworkers.ingest.fencing`): its registry writes are
refused once a newer attempt claimed the fence, and each vector store write is preceded by a
check that the attempt still owns its job. An attempt that lost its job (LeaseLostError) records
nothing about the document; a cancelled one marks it cancelled, not failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
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
from docworkers.ingest.enrich import Enricher, LocalEnricher
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.parsing import IsolatedParser
from docworkers.ingest.payload import UploadJobPayload, UploadJobResult
from docworkers.ingest.stage_limits import DEFAULT_STAGE_LIMITS, Deadline, StageLimits
from docworkers.ingest.vector_repository import VectorRepository, vector_store_breaker

Progress = Callable[[int, str], Awaitable[None]]
EMBED_GROUP = 64  # chunks per embedding request: progress granularity, batched across jobs

log = logging.getLogger("docworkers.ingest")


@dataclass(slots=True)
class DocumentServices:
    """The in-process services a worker process shares between its concurrent jobs."""

    parser: IsolatedParser
    embedder: Embedder  # the raw model: semantic chunking and queries
    batcher: BatchingEmbedder  # the same model, batched across concurrent jobs
    enricher: Enricher = field(default_factory=LocalEnricher)
    limits: StageLimits = DEFAULT_STAGE_LIMITS  # time limits of the stages after parsing

    @classmethod
    def local(
        cls,
        embedder: Embedder,
        *,
        parser: IsolatedParser | None = None,
        enricher: Enricher | None = None,
        limits: StageLimits = DEFAULT_STAGE_LIMITS,
    ) -> DocumentServices:
        return cls(
            parser=parser or IsolatedParser(),
            embedder=embedder,
            batcher=BatchingEmbedder(embedder),
            enricher=enricher or LocalEnricher(),
            limits=limits,
        )

    async def aclose(self) -> None:
        await self.batcher.aclose()
        await asyncio.to_thread(self.parser.close)


class UploadPipeline:
    """Runs one upload end to end. Shared by the worker, the CLI and the benchmarks."""

    def __init__(
        self, services: DocumentServices, documents: DocumentRepository, vectors: VectorRepository
    ) -> None:
        self.services = services
        self.documents = documents
        self.vectors = vectors
        # One breaker per vector store process-wide: after repeated failures jobs stop hammering
        # it and are rescheduled (without using an attempt) until a probe call succeeds.
        self.vector_breaker = vector_store_breaker()

    async def run(
        self, payload: UploadJobPayload, *, job_id: str = "", progress: Progress | None = None,
        fence: AttemptFence | None = None,
    ) -> UploadJobResult:
        report = progress or _no_progress
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
        stage = _Stage(timings)
        try:
            return await self._stages(payload, document_id, report, stage, started, fence)
        except Exception as exc:
            await record_failure(self.documents, document_id, exc, fence=fence,
                                 stage=stage.failed)
            raise

    async def _stages(
        self,
        payload: UploadJobPayload,
        document_id: str,
        report: Progress,
        stage: _Stage,
        started: float,
        fence: AttemptFence | None = None,
    ) -> UploadJobResult:
        path = payload.path
        timings = stage.timings
        with stage("parsing"):
            await report(10, "parsing document")
            doc = await self.services.parser.aparse(
                path, filename=payload.filename, max_pages=payload.max_pages
            )
        with stage("chunking"):
            await report(30, "chunking text")
            chunks = await asyncio.to_thread(self._chunk, doc, payload)
            if not chunks:
                raise NoExtractableTextError(
                    payload.filename, "the document contains no text to index"
                )
        with stage("embedding"):
            await report(50, f"generating embeddings for {len(chunks)} chunks")
            limits = self.services.limits
            enrich_deadline = Deadline(limits.enrich_timeout, lambda: EnrichTimeoutError(
                f"enrich_timeout: enrichment did not finish within {limits.enrich_timeout:g} s; "
                "the document is stored without the rest of it"))
            enrichment = asyncio.create_task(
                asyncio.to_thread(self._enrich, doc, chunks, payload, enrich_deadline))
            try:
                async with asyncio.timeout(limits.embed_timeout) as embed_limit:
                    embeddings = await self._embed(chunks, report)
            except BaseException as exc:
                enrich_deadline.expire()  # not wanted any more: it stops at its next chunk
                if isinstance(exc, TimeoutError) and embed_limit.expired():
                    raise EmbedTimeoutError(payload.filename, _too_slow(
                        f"embedding {len(chunks)} chunks", limits.embed_timeout)) from None
                raise
            finally:
                extra, doc_meta, problems = await enrichment
        with stage("storing"):
            await report(70, f"storing {len(chunks)} chunks in the vector database")
            metadatas = [
                {
                    "filename": payload.filename,
                    "collection": payload.collection,
                    "strategy": payload.chunking_strategy,
                    **doc_meta,
                    **chunk_extra,
                }
                for chunk_extra in extra
            ]
            stored = _Stored(document_id, chunks, embeddings, metadatas, fence)
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
        )

    async def _store(self, physical: str, stored: _Stored) -> None:
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

    async def _follow_switch(self, collection: str, physical: str, stored: _Stored) -> None:
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
            await asyncio.to_thread(self.vectors.delete_document, physical, stored.document_id)
        except DocworkersError as exc:  # the old version is dropped by the reindex anyway
            log.warning("could not remove document %s from %s: %s", stored.document_id,
                        physical, exc)

    def _chunk(self, doc: ParsedDocument, payload: UploadJobPayload) -> list[Chunk]:
        seconds = self.services.limits.chunk_timeout
        deadline = Deadline(seconds, lambda: ChunkTimeoutError(payload.filename, _too_slow(
            f"chunking {len(doc.text):,} characters", seconds)))
        try:
            return chunk_document(
                doc,
                strategy=payload.chunking_strategy,
                chunk_size=payload.chunk_size,
                chunk_overlap=payload.chunk_overlap,
                embedder=self.services.embedder,
                checkpoint=deadline.check,  # stops the thread itself: nothing is left running
            )
        except ConfigurationError as exc:
            raise InvalidPayloadError(str(exc)) from exc

    async def _embed(self, chunks: Sequence[Chunk], report: Progress) -> np.ndarray:
        groups = [chunks[i : i + EMBED_GROUP] for i in range(0, len(chunks), EMBED_GROUP)]
        results: list[np.ndarray | None] = [None] * len(groups)

        async def one(index: int) -> int:
            results[index] = await self.services.batcher.embed([c.text for c in groups[index]])
            return index

        last = 50
        tasks = [asyncio.ensure_future(one(i)) for i in range(len(groups))]
        try:
            for done, finished in enumerate(asyncio.as_completed(tasks), start=1):
                await finished
                percent = 50 + (20 * done) // len(groups)
                if last < percent < 70:
                    last = percent
                    await report(percent, f"generating embeddings ({done}/{len(groups)} batches)")
        finally:
            # Stopped early (a time limit, a cancelled job, a failed group): the other groups'
            # texts are not wanted, and a cancelled request's texts leave the batcher's queue.
            for task in tasks:
                task.cancel()
        return np.vstack([r for r in results if r is not None])

    def _enrich(
        self,
        doc: ParsedDocument,
        chunks: Sequence[Chunk],
        payload: UploadJobPayload,
        deadline: Deadline | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
        """Per-chunk keywords/questions and document metadata. Never fails the upload; past
        ``deadline`` the chunks not reached yet go without."""
        extra: list[dict[str, Any]] = [{} for _ in chunks]
        if not payload.extract_metadata and not payload.num_questions:
            return extra, {}, []
        problems: list[str] = []
        enricher = self.services.enricher
        doc_meta: dict[str, Any] = {}
        try:
            found = enricher.document_metadata(doc)
            doc_meta = (
                {k: v for k, v in found.items() if v is not None}
                if payload.extract_metadata
                else {}
            )
            language = str(found.get("language") or "en")
            for item, chunk in zip(extra, chunks, strict=True):
                if deadline is not None:
                    deadline.check()
                keywords = enricher.keywords(chunk.text, language, 5)
                if payload.extract_metadata:
                    item["keywords"] = keywords
                if payload.num_questions:
                    item["questions"] = enricher.questions(
                        chunk.text, payload.num_questions, keywords, language
                    )
        except Exception as exc:
            log.warning("enrichment of %s failed: %s", payload.filename, exc)
            problems.append(f"{type(exc).__name__}: {exc}")
        doc_meta = {
            f"doc_{k}" if k in ("filename", "collection") else k: v for k, v in doc_meta.items()
        }
        return extra, doc_meta, problems


@dataclass(frozen=True, slots=True)
class _Stored:
    """What the store stage writes, kept to write it again after an alias switch."""

    document_id: str
    chunks: Sequence[Chunk]
    embeddings: np.ndarray
    metadatas: Sequence[dict[str, Any]]
    fence: AttemptFence | None = None  # the job attempt that writes them, if any


class _Stage:
    """Times each stage and remembers the one an exception escaped from (``failed``): our
    errors carry it (``DocworkersError.stage``, stored on the job's and the document's error),
    any other exception gets a note naming it, shown in the traceback stored on the job."""

    def __init__(self, timings: dict[str, int]) -> None:
        self.timings = timings
        self.failed: str | None = None

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.failed = self.failed or name
            if not isinstance(exc, DocworkersError):
                exc.add_note(f"(in the {name} stage of the upload)")
            elif exc.stage is None:
                exc.stage = name
            raise
        finally:
            self.timings[name] = round((time.perf_counter() - started) * 1000)


async def _no_progress(percent: int, message: str) -> None:
    return None


def _too_slow(what: str, seconds: float) -> str:
    return (
        f"{what} did not finish within the {seconds:g} s limit; the document is unusually "
        "large or pathological. Split it into smaller files, or ask an administrator to raise "
        "the limit."
    )


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
