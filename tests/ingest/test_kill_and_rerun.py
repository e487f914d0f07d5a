"""Kill an upload worker process mid-embedding: the rerun leaves exactly one copy of each chunk."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from upload_kills import completed_then_killed, rescued

from docworkers.ingest.document_repository import DocumentRepository, DocumentStatus
from docworkers.queue import JobStatus, RedisJobRepository, RepositoryConfig


async def test_kill_mid_embedding_then_rerun_keeps_one_copy_of_each_chunk(
        redis_url: str, clean_redis: Any, long_pdf: Path, tmp_path: Path, embedder: Any) -> None:
    chroma = tmp_path / "chroma"
    stored = tmp_path / "long.pdf"
    shutil.copy(long_pdf, stored)
    payload = {"filename": stored.name, "file_path": str(stored), "collection": "kill-test",
               "max_pages": 30}
    jobs = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="kill"))
    documents = DocumentRepository(aioredis.Redis.from_url(redis_url, decode_responses=True))

    # 1. A first upload completes; 2. the same file again, SIGKILLed while it embeds.
    done, second = await completed_then_killed(redis_url, chroma, jobs, payload, payload,
                                               (50, 70))
    chunk_count = done.result["chunk_count"]

    # 3. Another worker takes the job over once the lease expires and finishes it.
    try:
        async with rescued(jobs, documents, chroma, embedder, second) as (rerun, vectors):
            assert rerun.status == JobStatus.COMPLETED, rerun.error
            assert rerun.retry_count == 1 and rerun.worker_id and "rescuer" in rerun.worker_id
            document_id = rerun.result["document_id"]
            assert document_id == done.result["document_id"]
            assert rerun.result["chunk_count"] == chunk_count
            ids = vectors.document_chunk_ids("kill-test", document_id)
            assert len(ids) == len(set(ids)) == chunk_count
            assert sorted(ids) == sorted(f"{document_id}:{i}" for i in range(chunk_count))
            record = await documents.get(document_id)
            assert record is not None and record.status == DocumentStatus.COMPLETED
            assert record.chunk_count == chunk_count
    finally:
        await documents.client.aclose()
        await jobs.close()
