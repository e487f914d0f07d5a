"""The ``collection_delete`` job: drop a collection from the vector store and the registry.

Every physical collection of the logical one goes (the current one and any version a crashed
reindex left behind; each from the keyword index first, then the vector store: see
ingest/keyword_side.py), then its registry entries, then its alias. The job holds the
collection's lock, so it never runs at the same time as a reindex of that collection. A rerun,
or dropping a collection that does not exist, succeeds with ``existed=False``. A job attempt's
writes are fenced (ingest/fencing.py): one that lost its job drops and deletes nothing more.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from docworkers.ingest.aliases import CollectionAliases, physical_collections
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.jobs.common import (
    DocumentJobWorker,
    JobPayload,
    LogicalCollection,
    Progress,
    no_progress,
)
from docworkers.ingest.jobs.kinds import COLLECTION_DELETE_JOB_TYPE
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.ingest.vector_repository import VectorRepository
from docworkers.queue.job import Job
from docworkers.workers.context import JobContext

__all__ = [
    "COLLECTION_DELETE_JOB_TYPE",
    "CollectionDeletePayload",
    "CollectionDeleteResult",
    "CollectionDeleteWorker",
    "delete_collection",
]



class CollectionDeletePayload(JobPayload):
    collection: LogicalCollection


class CollectionDeleteResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    collection: str
    existed: bool  # anything was dropped: a physical collection or a registry entry
    dropped: list[str] = Field(default_factory=list)  # physical Chroma collections
    documents_deleted: int = 0


async def delete_collection(documents: DocumentRepository, vectors: VectorRepository,
                            collection: str, *, owner: str, progress: Progress = no_progress,
                            fence: AttemptFence | None = None) -> CollectionDeleteResult:
    """Drop ``collection`` everywhere (idempotent); ``owner`` (the job id) holds its lock and a
    job attempt passes its ``fence``."""
    aliases = CollectionAliases.for_documents(documents)
    keywords = LexicalIndex.for_documents(documents)
    async with aliases.lock(collection, owner=owner, fence=fence):
        await progress(10, "finding the collection's physical collections")
        current = await aliases.target(collection)
        names = await asyncio.to_thread(physical_collections, vectors, collection)
        names += [current] if current and current not in names else []
        dropped = []
        for n, name in enumerate(names, start=1):
            await progress(10 + 60 * n // len(names), f"dropping {name}")
            if fence is not None:
                await fence.check(f"dropping {name}")
            await keywords.drop_collection(name)
            if await asyncio.to_thread(vectors.delete_collection, name):
                dropped.append(name)
        await progress(80, "removing the registry entries")
        count = await documents.delete_collection(collection, fence=fence)
        await aliases.switch(collection, None, owner=owner, fence=fence)
    await progress(100, f"dropped {collection}: {len(dropped)} vector collection(s), "
                        f"{count} document(s)")
    return CollectionDeleteResult(collection=collection, existed=bool(dropped or count),
                                  dropped=dropped, documents_deleted=count)


class CollectionDeleteWorker(DocumentJobWorker):
    """Runs ``collection_delete`` jobs."""

    job_types: ClassVar[frozenset[str] | None] = frozenset({COLLECTION_DELETE_JOB_TYPE})

    async def process(self, job: Job, ctx: JobContext) -> Any:
        payload = CollectionDeletePayload.parse(job.payload)
        result = await delete_collection(self.documents, self.vectors, payload.collection,
                                         owner=job.id, progress=ctx.progress,
                                         fence=await self.fence(ctx))
        return result.model_dump()
