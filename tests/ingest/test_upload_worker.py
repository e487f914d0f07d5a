"""The upload worker end to end: real Redis, real Chroma, the real model, real documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from job_waits import until_finished
from upload_support import make_worker, payload

from docworkers.errors import InvalidPayloadError
from docworkers.ingest.document_repository import DocumentStatus
from docworkers.ingest.payload import UPLOAD_JOB_TYPE, UploadJobPayload
from docworkers.ingest.pipeline import UploadPipeline
from docworkers.ingest.search import SearchService
from docworkers.queue import JobStatus, RedisJobRepository
from docworkers.workers.config import CPU_BOUND_CONCURRENCY

PAPER = "pdf/layout-parser-paper-fast.pdf"
PHRASE = "A generalized learning-based framework dramatically reduces the need"


async def test_pdf_is_ingested_and_searchable(ingest_env: dict[str, Any], corpus: Path,
                                              tmp_path: Path) -> None:
    jobs: RedisJobRepository = ingest_env["jobs"]
    job_id = await jobs.enqueue(UPLOAD_JOB_TYPE, payload(corpus, PAPER, tmp_path,
                                                         extract_metadata=True,
                                                         num_questions=2))
    worker = make_worker(ingest_env)  # a WorkerConfig that leaves concurrency at 0:
    assert worker.config.concurrency == CPU_BOUND_CONCURRENCY  # the upload worker's own 3
    async with worker:
        job = await until_finished(jobs, job_id)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.progress == 100 and job.message == "upload completed"
    result = job.result
    assert result["success"] and result["chunk_count"] > 3
    assert result["collection"] == "risk-docs" and result["processing_time_ms"] > 0
    document = await ingest_env["documents"].get(result["document_id"])
    assert document.status == DocumentStatus.COMPLETED
    assert document.chunk_count == result["chunk_count"] and document.page_count == 2
    assert document.metadata["language"] == "en" and document.metadata["title"]
    hits = await SearchService(ingest_env["embedder"], ingest_env["vectors"]).search(
        "risk-docs", "learning-based framework reduces manual specification of rules", k=3)
    assert PHRASE in hits[0].text.replace("\n", " ")
    assert hits[0].page_start == 2 and hits[0].filename == PAPER.split("/")[1]
    assert hits[0].document_id == result["document_id"]
    assert hits[0].metadata["keywords"] and hits[0].metadata["questions"]


async def test_progress_runs_through_every_stage_in_order(ingest_env: dict[str, Any],
                                                          corpus: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, str]] = []

    async def record(percent: int, message: str) -> None:
        seen.append((percent, message))

    pipeline = UploadPipeline(ingest_env["services"], ingest_env["documents"],
                              ingest_env["vectors"])
    await pipeline.run(UploadJobPayload.parse(payload(corpus, PAPER, tmp_path)), progress=record)
    percents = [p for p, _ in seen]
    assert percents == sorted(percents)
    assert {10, 30, 50, 70, 90, 100} <= set(percents)
    assert seen[0] == (10, "parsing document") and seen[-1] == (100, "upload completed")


async def test_rerun_and_reupload_never_duplicate_chunks(ingest_env: dict[str, Any],
                                                         corpus: Path, tmp_path: Path) -> None:
    pipeline = UploadPipeline(ingest_env["services"], ingest_env["documents"],
                              ingest_env["vectors"])
    job = UploadJobPayload.parse(payload(corpus, PAPER, tmp_path))
    first = await pipeline.run(job)
    second = await pipeline.run(job)
    smaller = await pipeline.run(job.model_copy(update={"chunk_size": 200}))
    assert first.document_id == second.document_id == smaller.document_id
    ids = ingest_env["vectors"].document_chunk_ids("risk-docs", first.document_id)
    assert len(ids) == len(set(ids)) == smaller.chunk_count
    assert ingest_env["vectors"].count_document_chunks("risk-docs", first.document_id) \
        == smaller.chunk_count


@pytest.mark.parametrize(
    ("relative", "code"),
    [
        ("pdf/password.pdf", "encrypted"),
        ("text/empty.txt", "empty"),
        ("pdf/pypdf_007-imagemagick-images_imagemagick-images.pdf", "no_text"),
        ("other/fake.go", "unsupported_type"),
    ],
)
async def test_trap_files_fail_with_a_typed_error_and_the_worker_survives(
        ingest_env: dict[str, Any], corpus: Path, tmp_path: Path, relative: str,
        code: str) -> None:
    jobs: RedisJobRepository = ingest_env["jobs"]
    bad = await jobs.enqueue(UPLOAD_JOB_TYPE, payload(corpus, relative, tmp_path))
    good = await jobs.enqueue(UPLOAD_JOB_TYPE, payload(corpus, "pdf/DA-1p.pdf", tmp_path))
    async with make_worker(ingest_env, max_retries=3) as worker:
        failed = await until_finished(jobs, bad)
        done = await until_finished(jobs, good)
        assert worker.is_running()
    assert failed.status == JobStatus.FAILED and failed.retry_count == 0  # permanent
    assert failed.error and failed.error.code == code and failed.error.stage == "parsing"
    assert done.status == JobStatus.COMPLETED
    documents = await ingest_env["documents"].list_documents("risk-docs")
    broken = [d for d in documents if d.status == DocumentStatus.FAILED]
    assert len(broken) == 1 and broken[0].error_code == code
    assert broken[0].failed_stage == "parsing" and broken[0].error_message


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"filename": ""}, "filename"),
        ({"collection": "x"}, "collection"),
        ({"collection": "bad name!"}, "collection"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "chunk_overlap"),
        ({"chunk_size": -1}, "chunk_size"),
        ({"num_questions": 11}, "num_questions"),
        ({"chunking_strategy": "magic"}, "chunking_strategy"),
        ({"colection": "typo"}, "colection"),
        ({"file_path": "s3://bucket/key"}, "file_path"),
    ],
)
def test_invalid_payloads_name_the_field(fields: dict[str, Any], field: str) -> None:
    data = {"filename": "a.pdf", "file_path": "/tmp/a.pdf", "collection": "docs", **fields}
    with pytest.raises(InvalidPayloadError, match=field):
        UploadJobPayload.parse(data).path  # noqa: B018 - path validation happens on access


async def test_chunk_size_above_model_window_is_a_permanent_error(
        ingest_env: dict[str, Any], corpus: Path, tmp_path: Path) -> None:
    jobs: RedisJobRepository = ingest_env["jobs"]
    job_id = await jobs.enqueue(UPLOAD_JOB_TYPE, payload(corpus, PAPER, tmp_path,
                                                         chunk_size=512))
    async with make_worker(ingest_env):
        job = await until_finished(jobs, job_id)
    assert job.status == JobStatus.FAILED and job.error and job.error.code == "invalid_payload"
    assert "window" in job.error.message and job.retry_count == 0
