"""Uploads to a reindexed collection: the chunks go to the physical collection its alias names,
also when the alias switches while the upload runs."""

from __future__ import annotations

from jobs_support import MEMO, MEMO_QUERY, NOTE, JobsEnv

from docworkers.ingest.aliases import resolve_collection
from docworkers.ingest.jobs.vector_reindex import VectorReindex, VectorReindexPayload
from docworkers.ingest.payload import UploadJobPayload
from docworkers.ingest.pipeline import UploadPipeline
from docworkers.ingest.search import SearchService

REINDEX = {"collection": "docs", "chunking_strategy": "sentence", "chunk_size": 64}


async def _reindex(env: JobsEnv, job_id: str) -> str:
    reindex = VectorReindex(env.services, env.documents, env.vectors, drain_seconds=0)
    return (await reindex.run(VectorReindexPayload.parse(REINDEX), job_id=job_id)).physical


async def _found(env: JobsEnv, document_id: str) -> bool:
    """Search as the API does: the logical name, resolved through the alias by the service."""
    hits = await SearchService(env.embedder, env.vectors, env.documents).search("docs",
                                                                                MEMO_QUERY)
    return bool(hits) and hits[0].document_id == document_id


async def test_an_upload_after_a_reindex_lands_in_the_physical_collection(env: JobsEnv
                                                                           ) -> None:
    await env.ingest(NOTE)
    assert await _reindex(env, "reindex-1") == "docs--v1"
    memo = await env.ingest(MEMO)
    assert env.collections() == ["docs--v1"]  # nothing was written under the logical name
    stored = env.vectors.count_document_chunks("docs--v1", memo.document_id)
    assert stored == memo.chunk_count >= 1
    assert await _found(env, memo.document_id)


async def test_an_upload_stored_just_before_the_switch_follows_it(env: JobsEnv) -> None:
    """The worst interleaving: the upload stores its chunks in ``docs``, then a whole reindex
    runs (switch, drop of ``docs``, last catch-up) before the upload marks its document
    completed. The reindex never saw the document completed, so only the upload can save it."""
    await env.ingest(NOTE)
    path = env.stored(MEMO)
    payload = UploadJobPayload.parse({"filename": path.name, "file_path": str(path),
                                      "collection": "docs"})
    reindexed: list[str] = []

    async def progress(percent: int, message: str) -> None:
        if message == "finalizing document":  # chunks stored, document not completed yet
            assert env.vectors.list_collections()[0].name == "docs"
            reindexed.append(await _reindex(env, "reindex-2"))

    pipeline = UploadPipeline(env.services, env.documents, env.vectors)
    memo = await pipeline.run(payload, job_id="upload-1", progress=progress)

    assert reindexed == ["docs--v1"]
    assert await resolve_collection(env.documents, "docs") == "docs--v1"
    stored = env.vectors.count_document_chunks("docs--v1", memo.document_id)
    assert stored == memo.chunk_count >= 1
    assert await _found(env, memo.document_id)
    assert env.vectors.count_document_chunks("docs", memo.document_id) == 0
