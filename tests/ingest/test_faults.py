"""Fault injection on the upload path: the vector store goes away, bad input arrives at volume."""

from __future__ import annotations

import json
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from job_waits import until_job as until
from server_start import start_chroma

from docworkers.ingest.chroma_server import ChromaServer
from docworkers.ingest.document_repository import DocumentRepository, DocumentStatus
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.pipeline import DocumentServices
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.queue import JobStatus, RedisJobRepository, RepositoryConfig
from docworkers.workers import WorkerConfig


async def test_chroma_outage_is_retried_and_never_leaves_a_partial_document(
        redis_url: str, clean_redis: Any, corpus: Path, tmp_path: Path, embedder: Any) -> None:
    server = ChromaServer(tmp_path / "chroma-server")
    url = start_chroma(server)
    jobs = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="faults"))
    documents = DocumentRepository(aioredis.Redis.from_url(redis_url, decode_responses=True))
    vectors = ChromaVectorRepository.from_url(url)
    services = DocumentServices.local(embedder)
    stored = tmp_path / "paper.pdf"
    shutil.copy(corpus / "pdf" / "layout-parser-paper-fast.pdf", stored)
    worker = UploadWorker(UploadWorkerConfig(
        worker=WorkerConfig(worker_name="w", retry_delay=0.5, retry_delay_cap=1.0,
                            max_retries=20),
        job_repo=jobs, document_repo=documents, vector_repo=vectors, services=services))
    try:
        vectors.ping()
        server.stop()  # Chroma goes away before the job stores its chunks
        job_id = await jobs.enqueue(UPLOAD_JOB_TYPE, {
            "filename": stored.name, "file_path": str(stored), "collection": "outage"})
        async with worker:
            retrying = await until(jobs, job_id, lambda j: j.retry_count >= 2)
            assert retrying.status != JobStatus.COMPLETED
            assert retrying.error and retrying.error.code == "vector_store"
            assert retrying.error.stage == "storing"
            record = (await documents.list_documents("outage"))[0]
            assert record.status == DocumentStatus.FAILED  # never "completed" half-stored
            assert record.failed_stage == "storing"
            start_chroma(server)  # Chroma is back: the next retry succeeds
            done = await until(jobs, job_id, lambda j: j.is_terminal)
        assert done.status == JobStatus.COMPLETED, done.error
        document_id = done.result["document_id"]
        record = await documents.get(document_id)
        assert record is not None and record.status == DocumentStatus.COMPLETED
        assert vectors.count_document_chunks("outage", document_id) == done.result["chunk_count"]
    finally:
        await services.aclose()
        vectors.close()
        await documents.client.aclose()
        await jobs.close()
        server.stop()


def hostile_files(folder: Path, corpus: Path) -> dict[str, str]:
    """Generated hostile inputs and corpus traps -> the error code each must end in."""
    rng = random.Random(1)
    pdf = (corpus / "pdf" / "DA-1p.pdf").read_bytes()
    files: dict[str, tuple[bytes, str]] = {
        "truncated.pdf": (pdf[: len(pdf) // 3], "corrupt"),
        "random.pdf": (b"%PDF-1.7\n" + rng.randbytes(20_000), "corrupt"),
        "noise.docx": (rng.randbytes(5_000), "corrupt"),
        # UTF-8 prose with two stray bytes: never decoded by dropping or replacing them
        "invalid-bytes.txt": ("Grüße aus Köln, naïve café. ".encode() * 40 + b"\xff"
                              + "Straße".encode() * 40 + b"\xc3(" + b" end", "corrupt"),
        "lying-extension.pdf": (b"just some plain text, not a PDF at all\n" * 20,
                                "unsupported_type"),
        "empty.md": (b"", "empty"),
        "whitespace.txt": (b" \n\t \n" * 100, "no_text"),
    }
    bomb = folder / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<w:document>" + b"A" * (120 * 1024 * 1024))
    codes = {"bomb.docx": "too_large"}
    for name, (data, code) in files.items():
        (folder / name).write_bytes(data)
        codes[name] = code
    for relative, code in [("pdf/password.pdf", "encrypted"),
                           ("formats/password_protected.xlsx", "encrypted"),
                           ("text/empty.txt", "empty"), ("other/fake.go", "unsupported_type")]:
        shutil.copy(corpus / relative, folder / Path(relative).name)
        codes[Path(relative).name] = code
    return codes


async def test_bad_input_at_volume_each_ends_in_its_typed_error(
        ingest_env: dict[str, Any], corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    codes = hostile_files(folder, corpus)
    good = tmp_path / "good.txt"
    shutil.copy(corpus / "text" / "book-war-and-peace-1p.txt", good)
    jobs: RedisJobRepository = ingest_env["jobs"]
    ids = {name: await jobs.enqueue(UPLOAD_JOB_TYPE, {
        "filename": name, "file_path": str(folder / name), "collection": "hostile"})
        for name in codes}
    worker = UploadWorker(UploadWorkerConfig(
        worker=WorkerConfig(worker_name="w", concurrency=4, retry_delay=0, max_retries=3),
        job_repo=jobs, document_repo=ingest_env["documents"], vector_repo=ingest_env["vectors"],
        services=ingest_env["services"]))
    async with worker:
        outcomes = {name: await until(jobs, job_id, lambda j: j.is_terminal)
                    for name, job_id in ids.items()}
        good_id = await jobs.enqueue(UPLOAD_JOB_TYPE, {
            "filename": good.name, "file_path": str(good), "collection": "hostile"})
        after = await until(jobs, good_id, lambda j: j.is_terminal)
        assert worker.is_running()
    got = {name: (job.status.value, job.error.code if job.error else None, job.retry_count)
           for name, job in outcomes.items()}
    expected = {name: ("failed", code, 0) for name, code in codes.items()}
    assert got == expected, json.dumps(got, indent=1)
    for job in outcomes.values():
        assert job.error and job.error.message and "Traceback" not in job.error.message
    assert after.status == JobStatus.COMPLETED
    assert ingest_env["vectors"].list_collections()[0].count == after.result["chunk_count"]
