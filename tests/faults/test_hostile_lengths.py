"""Hostile-length text through a real UploadWorker (issue 11): every job ends in a typed outcome,
stored chunks are bounded, the worker keeps running.

Real parts throughout: Redis (the session's embedded valkey), the local model, embedded Chroma or
a real ``chroma run`` server, files on disk. The time limits used here are one to two orders of
magnitude below the work they stop (20 MiB on one line takes ~10 s or more to chunk; 750
chunks take ~40 s to embed on two cores), so which limit ends a job does not depend on the
machine's speed. The 100 MiB case is in ``benchmarks/hostile_inputs.py``.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from job_waits import until, until_job
from job_waits import until_finished as until_terminal
from server_start import start_chroma

import docworkers.ingest.vector_store as vector_store
from docworkers.errors import PayloadTooLargeError
from docworkers.ingest.chroma_server import ChromaServer
from docworkers.ingest.chunking import chunk_text
from docworkers.ingest.defaults import MAX_CHUNK_CHARS
from docworkers.ingest.document import Chunk
from docworkers.ingest.document_repository import DocumentRepository, DocumentStatus
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.pipeline import DocumentServices
from docworkers.ingest.stage_limits import StageLimits
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.ingest.vector_repository import vector_store_breaker
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.queue import Job, JobStatus, RedisJobRepository
from docworkers.workers import WorkerConfig
from docworkers.workers.circuit_breaker import CircuitState

MIB = 1024 * 1024
WORDS = ("shock", "wave", "stands", "ahead", "of", "the", "blunt", "body", "at", "high", "mach",
         "numbers", "boundary", "layer", "transition", "depends", "on", "reynolds", "number")
GOOD = "A short document. It has two sentences and ends here.\n"


def one_line(path: Path, size: int) -> Path:
    """``size`` bytes of words on one line: no punctuation, no line break."""
    rng = random.Random(size)
    text = " ".join(rng.choices(WORDS, k=size // 5 + 1))[:size]
    path.write_text(text, encoding="ascii")
    return path


def one_run(path: Path, size: int) -> Path:
    """``size`` bytes without a space: one [UNK] token to the tokenizer."""
    path.write_bytes(b"x" * size)
    return path


class World:
    """An UploadWorker on the session's Redis, with its own services and stage limits."""

    def __init__(self, env: dict[str, Any], limits: StageLimits, *, vectors: Any = None,
                 max_retries: int = 3) -> None:
        self.jobs: RedisJobRepository = env["jobs"]
        self.documents: DocumentRepository = env["documents"]
        self.vectors: ChromaVectorRepository = vectors or env["vectors"]
        self.services = DocumentServices.local(env["embedder"], limits=limits)
        self.worker = UploadWorker(UploadWorkerConfig(
            worker=WorkerConfig(worker_name="hostile", concurrency=2, retry_delay=0.1,
                                retry_delay_cap=0.2, max_retries=max_retries),
            job_repo=self.jobs, document_repo=self.documents, vector_repo=self.vectors,
            services=self.services))

    async def ingest(self, path: Path, collection: str = "hostile") -> Job:
        job_id = await self.jobs.enqueue(UPLOAD_JOB_TYPE, {
            "filename": path.name, "file_path": str(path), "collection": collection})
        return await until_terminal(self.jobs, job_id, 240)

    def stored_texts(self, job: Job, collection: str = "hostile") -> list[str]:
        chunks = self.vectors.document_chunks(collection, job.result["document_id"])
        return [text for _id, text, _meta in chunks]

    async def failed_record(self, job: Job) -> Any:
        records = await self.documents.list_documents("hostile")
        return next(r for r in records if r.job_id == job.id)


@pytest.fixture
async def world_factory(ingest_env: dict[str, Any]) -> AsyncIterator[Any]:
    made: list[World] = []

    def make(limits: StageLimits | None = None, **options: Any) -> World:
        made.append(World(ingest_env, limits or StageLimits(), **options))
        return made[-1]

    yield make
    for world in made:
        await world.worker.stop()
        await world.services.aclose()


@pytest.mark.timeout(400)
async def test_long_runs_are_stored_as_bounded_chunks(world_factory: Any,
                                                      tmp_path: Path) -> None:
    """1 MiB and 20 MiB without a space: before, one chunk each (20 MiB stored as one)."""
    world = world_factory()
    async with world.worker:
        for size in (MIB, 20 * MIB):
            path = one_run(tmp_path / f"run-{size // MIB}mib.txt", size)
            job = await world.ingest(path)
            assert job.status == JobStatus.COMPLETED, job.error
            texts = world.stored_texts(job)
            assert len(texts) == job.result["chunk_count"] >= size // MAX_CHUNK_CHARS
            assert max(map(len, texts)) <= MAX_CHUNK_CHARS
            assert sum(map(len, texts)) == size  # every character, once, in order
            assert set("".join(texts[:3])) == {"x"}
        good = tmp_path / "good.txt"
        good.write_text(GOOD)
        assert (await world.ingest(good)).status == JobStatus.COMPLETED
        assert world.worker.is_running()


@pytest.mark.timeout(400)
async def test_a_chunking_time_limit_ends_the_job_with_chunk_timeout(
        world_factory: Any, tmp_path: Path) -> None:
    """20 MiB on one line took minutes (quadratic); under a limit of 1 s it ends typed."""
    world = world_factory(StageLimits(chunk_timeout=1.0))
    async with world.worker:
        job = await world.ingest(one_line(tmp_path / "line-20mib.txt", 20 * MIB))
        assert job.status == JobStatus.FAILED
        assert job.error is not None and job.error.code == "chunk_timeout"
        assert job.error.stage == "chunking" and job.retry_count == 0  # permanent
        assert "1 s limit" in job.error.message and "Traceback" not in job.error.message
        record = await world.failed_record(job)
        assert record.status == DocumentStatus.FAILED and record.error_code == "chunk_timeout"
        good = tmp_path / "good.txt"
        good.write_text(GOOD)
        assert (await world.ingest(good)).status == JobStatus.COMPLETED
        assert world.worker.is_running()


@pytest.mark.timeout(400)
async def test_an_embedding_time_limit_ends_the_job_with_embed_timeout(
        world_factory: Any, tmp_path: Path) -> None:
    """1 MiB on one line chunks at once now (~750 chunks) but takes long to embed."""
    world = world_factory(StageLimits(embed_timeout=2.0))
    path = one_line(tmp_path / "line-1mib.txt", MIB)
    chunks = len(chunk_text(path.read_text()))
    async with world.worker:
        job = await world.ingest(path)
        assert job.status == JobStatus.FAILED
        assert job.error is not None and job.error.code == "embed_timeout"
        assert job.error.stage == "embedding" and job.retry_count == 0
        assert f"embedding {chunks} chunks" in job.error.message
        # The batcher drops the job's queued texts: once the batch in the model is done, nothing
        # of it is left, and most of its chunks were never embedded.
        batcher = world.services.batcher
        await until(lambda: batcher.queued == 0, timeout=120)
        assert batcher.stats.texts < chunks / 2
        good = tmp_path / "good.txt"
        good.write_text(GOOD)
        after = await world.ingest(good)
        assert after.status == JobStatus.COMPLETED, after.error
        assert world.worker.is_running()


@pytest.mark.timeout(400)
async def test_an_enrichment_time_limit_stores_the_document_without_the_rest(
        world_factory: Any, tmp_path: Path) -> None:
    """Keywords take milliseconds per chunk; under a limit of 50 ms most chunks go without, the
    upload completes, and the document says why (enrichment never fails an upload)."""
    sentences = [" ".join(random.Random(i).choices(WORDS, k=12)).capitalize() + "."
                 for i in range(3000)]
    path = tmp_path / "prose.txt"
    path.write_text("\n\n".join(" ".join(sentences[i:i + 5]) for i in range(0, 3000, 5)))
    world = world_factory(StageLimits(enrich_timeout=0.05))
    async with world.worker:
        job_id = await world.jobs.enqueue(UPLOAD_JOB_TYPE, {
            "filename": path.name, "file_path": str(path), "collection": "hostile",
            "extract_metadata": True})
        job = await until_terminal(world.jobs, job_id, 240)
    assert job.status == JobStatus.COMPLETED, job.error
    problems = job.result["enrichment_errors"]
    assert len(problems) == 1 and "enrich_timeout" in problems[0], problems
    chunks = world.vectors.document_chunks("hostile", job.result["document_id"])
    assert len(chunks) == job.result["chunk_count"] > 50
    with_keywords = sum(1 for _id, _text, meta in chunks if meta.get("keywords"))
    assert with_keywords < len(chunks) / 2


@pytest.mark.timeout(400)
async def test_a_store_refusing_a_payload_as_too_large_is_permanent_and_not_counted(
        world_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real `chroma run` answers 413 "Payload too large" to a request body above its limit
    (40 MB by default; 1 MB here). Before, that was a retryable store error: three retries over
    minutes, the dead-letter queue, a message to check that Chroma runs. Now it is permanent,
    and the store's circuit breaker does not count it."""
    server = ChromaServer(tmp_path / "chroma-server", max_payload_bytes=1_000_000)
    url = start_chroma(server)
    vectors = ChromaVectorRepository.from_url(url)
    breaker = vector_store_breaker()
    breaker.reset()
    try:
        # Directly: one record of 2 MB, as often as would open the breaker.
        chunk = Chunk(index=0, text="y" * 2_000_000, start_char=0, end_char=2_000_000,
                      token_count=1)
        for _ in range(breaker.failure_threshold + 1):
            with pytest.raises(PayloadTooLargeError) as refused:
                breaker.call_sync(vectors.replace_document, "direct", "doc", [chunk],
                                  np.ones((1, 384), dtype=np.float32), [{}])
        assert refused.value.code == "payload_too_large" and not refused.value.retryable
        assert "413" in str(refused.value) and url not in str(refused.value)
        assert breaker.state == CircuitState.CLOSED and breaker.stats().failures == 0

        # Through the worker: 1 MiB without a space is 259 chunks, ~1.7 MB to send. Requests
        # of up to 8 MiB (MAX_REQUEST_BYTES) are too large for this server: a typed, permanent
        # failure, never retried, not counted.
        world = world_factory(vectors=vectors)
        path = one_run(tmp_path / "run-1mib.txt", MIB)
        async with world.worker:
            job = await world.ingest(path)
            assert job.status == JobStatus.FAILED
            assert job.error is not None and job.error.code == "payload_too_large"
            assert job.error.stage == "storing" and job.retry_count == 0
            assert breaker.state == CircuitState.CLOSED and breaker.stats().failures == 0
            record = await world.failed_record(job)
            assert record.error_code == "payload_too_large"
            # With requests bounded below the server's limit the same document is stored.
            with monkeypatch.context() as patch:
                patch.setattr(vector_store, "MAX_REQUEST_BYTES", 400_000)
                again = await world.ingest(path)
            assert again.status == JobStatus.COMPLETED, again.error
            texts = world.stored_texts(again)
            assert len(texts) == again.result["chunk_count"] > 250
            assert max(map(len, texts)) <= MAX_CHUNK_CHARS
            assert world.worker.is_running()
    finally:
        vectors.close()
        server.stop()


@pytest.mark.timeout(300)
async def test_a_hung_store_ends_the_attempt_with_store_timeout_then_recovers(
        world_factory: Any, tmp_path: Path) -> None:
    """A `chroma run` that stops answering (SIGSTOP) would hold the job forever: the store stage
    ends it at its limit with store_timeout, retryable; once the server answers again, a retry
    stores the document. The write left behind stops at its next checkpoint."""
    server = ChromaServer(tmp_path / "chroma-server")
    url = start_chroma(server)
    vectors = ChromaVectorRepository.from_url(url)
    breaker = vector_store_breaker()
    breaker.reset()
    good = tmp_path / "good.txt"
    good.write_text(GOOD)
    world = world_factory(StageLimits(store_timeout=2.0), vectors=vectors, max_retries=10)
    try:
        vectors.ping()
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        async with world.worker:
            job_id = await world.jobs.enqueue(UPLOAD_JOB_TYPE, {
                "filename": good.name, "file_path": str(good), "collection": "hostile"})
            retrying = await until_job(world.jobs, job_id, lambda j: j.retry_count >= 1)
            assert retrying.error is not None and retrying.error.code == "store_timeout"
            assert retrying.error.stage == "storing" and retrying.status != JobStatus.FAILED
            os.kill(server.process.pid, signal.SIGCONT)
            done = await until_terminal(world.jobs, job_id, 240)
            assert done.status == JobStatus.COMPLETED, done.error
            assert world.stored_texts(done) == [GOOD.strip()]
            assert world.worker.is_running()
    finally:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)
        breaker.reset()
        vectors.close()
        server.stop()


def test_the_codes_hostile_lengths_end_in() -> None:
    """The codes that hostile lengths can end in are stable, typed and permanent where a
    retry cannot help (store_timeout is retryable: see StoreTimeoutError)."""
    from docworkers import errors

    expected = {
        errors.ChunkTimeoutError: ("chunk_timeout", False),
        errors.EmbedTimeoutError: ("embed_timeout", False),
        errors.StoreTimeoutError: ("store_timeout", True),
        errors.PayloadTooLargeError: ("payload_too_large", False),
        errors.EnrichTimeoutError: ("enrich_timeout", True),
    }
    for error, (code, retryable) in expected.items():
        assert (error.code, error.retryable) == (code, retryable)
    assert issubclass(errors.PayloadTooLargeError, errors.InputRejectedError)


def test_stage_limits_are_validated_naming_the_field() -> None:
    from docworkers.errors import ConfigurationError

    for field in ("chunk_timeout", "embed_timeout", "store_timeout", "enrich_timeout"):
        for bad in (0, -1.0, float("inf"), True, "10"):
            with pytest.raises(ConfigurationError) as error:
                StageLimits(**{field: bad})  # type: ignore[arg-type]
            assert error.value.field == field
