"""The pieces of an upload's stages that need no pipeline state: stage timing, embedding in
groups with progress, enrichment that never fails the upload, and the per-chunk metadata.

:class:`~docworkers.ingest.pipeline.UploadPipeline` strings them together; they live here so
the pipeline module reads as the order of the stages and what each one records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from docworkers.errors import DocworkersError
from docworkers.ingest.document import Chunk, ParsedDocument
from docworkers.ingest.embedding_cache import AsyncEmbedder
from docworkers.ingest.enrich import Enricher
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.payload import UploadJobPayload
from docworkers.ingest.stage_limits import Deadline

Progress = Callable[[int, str], Awaitable[None]]
EMBED_GROUP = 64  # chunks per embedding request: progress granularity, batched across jobs

log = logging.getLogger("docworkers.ingest")


@dataclass(frozen=True, slots=True)
class StoredChunks:
    """What the store stage writes, kept to write it again after an alias switch."""

    document_id: str
    chunks: Sequence[Chunk]
    embeddings: np.ndarray
    metadatas: Sequence[dict[str, Any]]
    fence: AttemptFence | None = None  # the job attempt that writes them, if any


class StageTimer:
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


async def no_progress(percent: int, message: str) -> None:
    return None


def too_slow(what: str, seconds: float) -> str:
    """The message of a stage time limit that a document ran into."""
    return (
        f"{what} did not finish within the {seconds:g} s limit; the document is unusually "
        "large or pathological. Split it into smaller files, or ask an administrator to raise "
        "the limit."
    )


async def embed_chunks(
    batcher: AsyncEmbedder, chunks: Sequence[Chunk], report: Progress
) -> np.ndarray:
    """The chunks' embeddings, requested in groups of :data:`EMBED_GROUP`, reporting progress
    from 50 to 70 percent as groups finish. A text repeated in the document (a page header,
    a boilerplate paragraph: 454 of the 815 chunks of the corpus's 872-page handbook) is
    embedded once."""
    texts = [c.text for c in chunks]
    distinct = list(dict.fromkeys(texts))
    groups = [distinct[i : i + EMBED_GROUP] for i in range(0, len(distinct), EMBED_GROUP)]
    results: list[np.ndarray | None] = [None] * len(groups)

    async def one(index: int) -> int:
        results[index] = await batcher.embed(groups[index])
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
    vectors = np.vstack([r for r in results if r is not None])
    if len(distinct) == len(texts):
        return vectors
    row = {text: index for index, text in enumerate(distinct)}
    return vectors[[row[text] for text in texts]]


def enrich_chunks(
    enricher: Enricher,
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


def chunk_metadatas(
    payload: UploadJobPayload, doc_meta: dict[str, Any], extra: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The metadata stored with each chunk: the upload's, the document's, then the chunk's."""
    return [
        {
            "filename": payload.filename,
            "collection": payload.collection,
            "strategy": payload.chunking_strategy,
            **doc_meta,
            **chunk_extra,
        }
        for chunk_extra in extra
    ]
