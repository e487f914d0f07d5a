"""Kill an upload worker process mid-embedding: the rerun leaves exactly one copy of each chunk."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from docworkers.ingest.document_repository import DocumentRepository, DocumentStatus
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.pipeline import DocumentServices
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.queue import Job, JobStatus, RedisJobRepository, RepositoryConfig
from docworkers.workers import WorkerConfig

HERE = Path(__file__).parent


async def wait_for(repo: RedisJobRepository, job_id: str, predicate: Any,
                   timeout: float = 120) -> Job:
    async def poll() -> Job:
        while not predicate(job := await repo.get_job(job_id)):
            await asyncio.sleep(0.01)
        return job

    return await asyncio.wait_for(poll(), timeout)


def spawn(redis_url: str, chroma: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DOCWORKERS_REDIS_URL": redis_url, "DOCWORKERS_QUEUE": "kill",
           "DOCWORKERS_CHROMA_PATH": str(chroma), "DOCWORKERS_LEASE_TIMEOUT": "1",
           "DOCWORKERS_CONCURRENCY": "1", "DOCWORKERS_RETRY_DELAY": "0"}
    env.pop("DOCWORKERS_TEST_REDIS_URL", None)
    return subprocess.Popen([sys.executable, str(HERE / "upload_worker_proc.py")],
                            stdout=subprocess.PIPE, text=True, env=env)


def stop(proc: subprocess.Popen[str], sig: int) -> None:
    proc.send_signal(sig)
    proc.wait(30)
    assert proc.stdout is not None
    proc.stdout.close()


async def test_kill_mid_embedding_then_rerun_keeps_one_copy_of_each_chunk(
        redis_url: str, clean_redis: Any, long_pdf: Path, tmp_path: Path, embedder: Any) -> None:
    chroma = tmp_path / "chroma"
    stored = tmp_path / "long.pdf"
    shutil.copy(long_pdf, stored)
    payload = {"filename": stored.name, "file_path": str(stored), "collection": "kill-test",
               "max_pages": 30}
    jobs = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="kill"))
    documents = DocumentRepository(aioredis.Redis.from_url(redis_url, decode_responses=True))

    # 1. A first upload completes: its chunks are in Chroma.
    first_proc = spawn(redis_url, chroma)
    first = await jobs.enqueue(UPLOAD_JOB_TYPE, payload)
    done = await wait_for(jobs, first, lambda j: j.is_terminal)
    stop(first_proc, signal.SIGTERM)
    assert done.status == JobStatus.COMPLETED, done.error
    chunk_count = done.result["chunk_count"]

    # 2. The same file again; the worker is SIGKILLed while it embeds.
    victim = spawn(redis_url, chroma)
    second = await jobs.enqueue(UPLOAD_JOB_TYPE, payload)
    running = await wait_for(jobs, second, lambda j: 50 <= j.progress < 70)
    stop(victim, signal.SIGKILL)
    assert running.status == JobStatus.PROCESSING

    # 3. Another worker takes the job over once the lease expires and finishes it.
    vectors = ChromaVectorRepository.from_path(chroma)
    services = DocumentServices.local(embedder)
    worker = UploadWorker(UploadWorkerConfig(
        worker=WorkerConfig(worker_name="rescuer", lease_timeout=30), job_repo=jobs,
        document_repo=documents, vector_repo=vectors, services=services))
    try:
        async with worker:
            rerun = await wait_for(jobs, second, lambda j: j.is_terminal)
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
        await services.aclose()
        vectors.close()
        await documents.client.aclose()
        await jobs.close()
