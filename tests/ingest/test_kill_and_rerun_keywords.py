"""Kill an upload worker process mid-upload (while it embeds, or while it stores: between or
during the vector and the keyword writes) and rerun the job: the keyword index and the vector
store then hold exactly the same chunk ids, one by one, and only the rerun's."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from upload_kills import completed_then_killed, rescued

from docworkers.ingest.document_repository import DocumentRepository, DocumentStatus
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.queue import JobStatus, RedisJobRepository, RepositoryConfig

COLLECTION = "kill-test"
# progress of the job when the victim is killed: embedding is 50-69, storing 70-89
STAGES = {"embedding": (50, 70), "storing": (70, 100)}


@pytest.mark.parametrize("stage", list(STAGES))
async def test_kill_mid_upload_then_rerun_leaves_both_sides_equal(
        stage: str, redis_url: str, clean_redis: Any, long_pdf: Path, tmp_path: Path,
        embedder: Any) -> None:
    chroma = tmp_path / "chroma"
    stored = tmp_path / "long.pdf"
    shutil.copy(long_pdf, stored)
    first_payload = {"filename": stored.name, "file_path": str(stored),
                     "collection": COLLECTION, "max_pages": 30, "chunk_size": 64}
    # the re-upload re-chunks into fewer, longer chunks: the first upload's surplus must go
    payload = {**first_payload, "chunk_size": 200}
    jobs = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="kill"))
    documents = DocumentRepository(aioredis.Redis.from_url(redis_url, decode_responses=True))
    keywords = LexicalIndex.for_documents(documents)

    # 1. A first upload completes: its chunks are on both sides. 2. The same file re-chunked;
    # the worker is SIGKILLed in the middle of ``stage``.
    done, second = await completed_then_killed(redis_url, chroma, jobs, first_payload, payload,
                                               STAGES[stage])
    first_count = done.result["chunk_count"]

    # 3. Another worker takes the job over once the lease expires and finishes it.
    try:
        async with rescued(jobs, documents, chroma, embedder, second) as (rerun, vectors):
            assert rerun.status == JobStatus.COMPLETED, rerun.error
            assert rerun.retry_count == 1 and rerun.worker_id and "rescuer" in rerun.worker_id
            document_id = rerun.result["document_id"]
            assert document_id == done.result["document_id"]
            chunk_count = rerun.result["chunk_count"]
            assert 0 < chunk_count < first_count
            expected = [f"{document_id}:{i}" for i in range(chunk_count)]
            dense = vectors.document_chunk_ids(COLLECTION, document_id)
            assert dense == expected
            lexical = await keywords.chunk_ids(COLLECTION, document_id)
            for chunk_id in dense:  # one by one, for a readable failure
                assert chunk_id in lexical, f"{chunk_id} is in the vector store only"
            assert lexical == set(dense), f"keyword-only chunks: {sorted(lexical - set(dense))}"
            assert await keywords.chunk_ids(COLLECTION) == set(dense)
            texts = {id_: text for id_, text, _ in vectors.document_chunks(COLLECTION, document_id)}
            hits = await keywords.search(COLLECTION, texts[expected[-1]], chunk_count)
            assert hits and all(hit.chunk_id in texts for hit in hits)
            record = await documents.get(document_id)
            assert record is not None and record.status == DocumentStatus.COMPLETED
            assert record.chunk_count == chunk_count
    finally:
        await documents.client.aclose()
        await jobs.close()
