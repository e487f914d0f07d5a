"""The ``document_delete`` job: remove one document's chunks and its registry entry.

Chunks go first (from the keyword index, then the vector store: see ingest/keyword_side.py) and
the registry entry last, so a crash in between leaves the entry and a rerun finishes the work.
A job attempt's writes are fenced (ingest/fencing.py): one that lost its job deletes nothing
more. Deleting a document that is not registered succeeds with ``deleted=False``.
The stored file is kept: uploads are stored by content, so another document may share it.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from docworkers.ingest.aliases import CollectionAliases
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.jobs.common import (
    DocumentId,
    DocumentJobWorker,
    JobPayload,
    Progress,
    no_progress,
)
from docworkers.ingest.jobs.kinds import DOCUMENT_DELETE_JOB_TYPE
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.ingest.vector_repository import VectorRepository
from docworkers.queue.job import Job
from docworkers.workers.context import JobContext

__all__ = [
    "DOCUMENT_DELETE_JOB_TYPE",
    "DocumentDeletePayload",
    "DocumentDeleteResult",
    "DocumentDeleteWorker",
    "delete_document",
]



class DocumentDeletePayload(JobPayload):
    document_id: DocumentId


class DocumentDeleteResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    document_id: str
    deleted: bool  # False: the registry did not know the document (already deleted)
    collection: str | None = None
    chunks_deleted: int = 0


async def delete_document(documents: DocumentRepository, vectors: VectorRepository,
                          document_id: str, *, progress: Progress = no_progress,
                          fence: AttemptFence | None = None) -> DocumentDeleteResult:
    """Remove ``document_id`` from the keyword index, the vector store and the registry
    (idempotent); a job attempt passes its ``fence``."""
    await progress(10, "looking up the document")
    record = await documents.get(document_id)
    if record is None:
        await progress(100, "no such document: nothing to delete")
        return DocumentDeleteResult(document_id=document_id, deleted=False)
    physical = await CollectionAliases.for_documents(documents).resolve(record.collection)
    await progress(30, f"removing its chunks from {physical}")
    await LexicalIndex.for_documents(documents).remove_document(physical, document_id,
                                                                fence=fence)
    if fence is not None:
        await fence.check(f"removing the chunks of {document_id}")
    removed = await asyncio.to_thread(vectors.delete_document, physical, document_id)
    await progress(70, "removing its registry entry")
    await documents.delete(document_id, fence=fence)
    await progress(100, f"deleted {record.filename} ({removed} chunks)")
    return DocumentDeleteResult(document_id=document_id, deleted=True,
                                collection=record.collection, chunks_deleted=removed)


class DocumentDeleteWorker(DocumentJobWorker):
    """Runs ``document_delete`` jobs."""

    job_types: ClassVar[frozenset[str] | None] = frozenset({DOCUMENT_DELETE_JOB_TYPE})

    async def process(self, job: Job, ctx: JobContext) -> Any:
        payload = DocumentDeletePayload.parse(job.payload)
        result = await delete_document(self.documents, self.vectors, payload.document_id,
                                       progress=ctx.progress, fence=await self.fence(ctx))
        return result.model_dump()
