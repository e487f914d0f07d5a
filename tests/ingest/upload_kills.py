"""Helpers of the kill-and-rerun tests: a real upload worker process to SIGKILL mid-upload, and
the worker that takes the job over once its lease expires."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis

from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.embedding_cache import EmbeddingCacheKeys
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.pipeline import DocumentServices
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.queue import Job, JobStatus, RedisJobRepository
from docworkers.workers import WorkerConfig

HERE = Path(__file__).parent


async def wait_for(repo: RedisJobRepository, job_id: str, predicate: Any,
                   timeout: float = 120, worker: subprocess.Popen[str] | None = None) -> Job:
    """The job once ``predicate`` holds; fails at once if ``worker`` (the process expected to
    run it) exits first."""
    async def poll() -> Job:
        while not predicate(job := await repo.get_job(job_id)):
            if worker is not None and worker.poll() is not None:
                raise AssertionError(f"the worker process exited ({worker.returncode}) before "
                                     "the job got there: see its traceback in the captured stderr")
            await asyncio.sleep(0.01)
        return job

    return await asyncio.wait_for(poll(), timeout)


def spawn(redis_url: str, chroma: Path) -> subprocess.Popen[str]:
    """An upload worker process on queue "kill" with a 1 s lease (quickly taken over)."""
    env = {**os.environ, "DOCWORKERS_REDIS_URL": redis_url, "DOCWORKERS_QUEUE": "kill",
           "DOCWORKERS_CHROMA_PATH": str(chroma), "DOCWORKERS_LEASE_TIMEOUT": "1",
           "DOCWORKERS_CONCURRENCY": "1", "DOCWORKERS_RETRY_DELAY": "0"}
    env.pop("DOCWORKERS_TEST_REDIS_URL", None)
    return subprocess.Popen([sys.executable, str(HERE / "upload_worker_proc.py")],
                            stdout=subprocess.PIPE, text=True, env=env)


def forget_embeddings(redis_url: str) -> None:
    """Empty the embedding cache (ingest/embedding_cache.py), so an upload of a document
    uploaded before embeds its chunks again: these tests kill a worker while it embeds."""
    keys = EmbeddingCacheKeys()
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(keys.index, *client.scan_iter(match=keys.entry_prefix + "*", count=1000))
    finally:
        client.close()


def stop(proc: subprocess.Popen[str], sig: int) -> None:
    proc.send_signal(sig)
    proc.wait(30)
    assert proc.stdout is not None
    proc.stdout.close()


async def completed_then_killed(
        redis_url: str, chroma: Path, jobs: RedisJobRepository, first_payload: dict[str, Any],
        payload: dict[str, Any], progress: tuple[int, int]) -> tuple[Job, str]:
    """A first upload completes on one worker process; then the upload of ``payload`` (the
    same document again) is SIGKILLed while its progress is in ``[low, high)``. Returns the
    completed first job and the id of the killed one, still processing under a dead lease."""
    first_proc = spawn(redis_url, chroma)
    first = await jobs.enqueue(UPLOAD_JOB_TYPE, first_payload)
    done = await wait_for(jobs, first, lambda j: j.is_terminal, worker=first_proc)
    stop(first_proc, signal.SIGTERM)
    assert done.status == JobStatus.COMPLETED, done.error
    forget_embeddings(redis_url)  # else the second upload finds every chunk cached

    low, high = progress
    victim = spawn(redis_url, chroma)
    second = await jobs.enqueue(UPLOAD_JOB_TYPE, payload)
    running = await wait_for(jobs, second, lambda j: low <= j.progress < high, worker=victim)
    stop(victim, signal.SIGKILL)
    assert running.status == JobStatus.PROCESSING
    return done, second


@contextlib.asynccontextmanager
async def rescued(jobs: RedisJobRepository, documents: DocumentRepository, chroma: Path,
                  embedder: Any, job_id: str
                  ) -> AsyncIterator[tuple[Job, ChromaVectorRepository]]:
    """Another worker ("rescuer") takes the job over once the lease expires and finishes it:
    the job's last state, and the vector store to look at (closed at the end)."""
    vectors = ChromaVectorRepository.from_path(chroma)
    services = DocumentServices.local(embedder)
    worker = UploadWorker(UploadWorkerConfig(
        worker=WorkerConfig(worker_name="rescuer", lease_timeout=30), job_repo=jobs,
        document_repo=documents, vector_repo=vectors, services=services))
    try:
        async with worker:
            rerun = await wait_for(jobs, job_id, lambda j: j.is_terminal)
        yield rerun, vectors
    finally:
        await services.aclose()
        vectors.close()
