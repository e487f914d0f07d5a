"""Scans through the whole upload: a real worker, real Redis, real Chroma, the real model and
the real Tesseract. A sentence that exists only as pixels is found by search, and the hit says
that OCR read it and how sure it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from job_waits import until_finished
from scans import (
    MEMO_SENTENCE,
    MIXED,
    PAGE_1_SENTENCE,
    PAGE_2_SENTENCE,
    SCANNED_MEMO,
    TOO_LITTLE_MEMORY,
    flat,
)
from upload_support import make_worker, payload

from docworkers.ingest.document_repository import DocumentStatus
from docworkers.ingest.parsing import IsolatedParser, ParseLimits
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.pipeline import DocumentServices
from docworkers.ingest.search import SearchService
from docworkers.queue import JobStatus, RedisJobRepository


async def test_a_sentence_on_a_scanned_page_is_found_by_search(
        ingest_env: dict[str, Any], corpus: Path, tmp_path: Path) -> None:
    jobs: RedisJobRepository = ingest_env["jobs"]
    memo = await jobs.enqueue(UPLOAD_JOB_TYPE, payload(corpus, SCANNED_MEMO, tmp_path))
    mixed = await jobs.enqueue(UPLOAD_JOB_TYPE, payload(corpus, MIXED, tmp_path))
    async with make_worker(ingest_env, "ocr-1"):
        memo_job = await until_finished(jobs, memo, 180)
        mixed_job = await until_finished(jobs, mixed, 180)
    assert memo_job.status == JobStatus.COMPLETED, memo_job.error
    assert mixed_job.status == JobStatus.COMPLETED, mixed_job.error
    search = SearchService(ingest_env["embedder"], ingest_env["vectors"], ingest_env["documents"])

    [hit] = await search.search("risk-docs", "how many blankets and laptops were delivered", k=1)
    assert hit.filename == "scanned-fake-memo.pdf" and MEMO_SENTENCE in flat(hit.text)
    assert hit.ocr and hit.ocr_confidence is not None and 50 < hit.ocr_confidence <= 100
    assert hit.page_start == hit.page_end == 1
    assert hit.metadata["ocr"] is True

    hits = await search.search("risk-docs", "the potential to transform DIA pipelines", k=3)
    top = hits[0]
    assert top.filename == "mixed-layout-parser-paper-p2-scanned.pdf"
    assert PAGE_2_SENTENCE in flat(top.text) and top.page_end == 2 and top.ocr
    text_layer = await search.search("risk-docs", PAGE_1_SENTENCE, k=1,
                                     filters={"page_end": 1})
    assert text_layer and not text_layer[0].ocr and text_layer[0].ocr_confidence is None
    assert "ocr" not in text_layer[0].metadata

    document = await ingest_env["documents"].get(mixed_job.result["document_id"])
    assert document.status == DocumentStatus.COMPLETED and document.page_count == 2
    assert document.metadata["ocr_pages"] == [2]


async def test_ocr_never_fails_a_scan_with_the_typed_no_text_error(
        ingest_env: dict[str, Any], corpus: Path, tmp_path: Path) -> None:
    jobs: RedisJobRepository = ingest_env["jobs"]
    job_id = await jobs.enqueue(UPLOAD_JOB_TYPE,
                                payload(corpus, SCANNED_MEMO, tmp_path, ocr="never"))
    async with make_worker(ingest_env, "ocr-1", max_retries=3) as worker:
        job = await until_finished(jobs, job_id, 180)
        assert worker.is_running()
    assert job.status == JobStatus.FAILED and job.retry_count == 0
    assert job.error and job.error.code == "no_text" and job.error.stage == "parsing"
    assert "ocr=never" in job.error.message
    [document] = await ingest_env["documents"].list_documents("risk-docs")
    assert document.status == DocumentStatus.FAILED and document.error_code == "no_text"


async def test_a_page_ocr_cannot_read_is_skipped_and_the_document_recorded_with_a_warning(
        ingest_env: dict[str, Any], corpus: Path, tmp_path: Path) -> None:
    parser = IsolatedParser(limits=ParseLimits(ocr_max_memory_bytes=TOO_LITTLE_MEMORY))
    services = DocumentServices.local(ingest_env["embedder"], parser=parser)
    env = {**ingest_env, "services": services}
    jobs: RedisJobRepository = env["jobs"]
    try:
        job_id = await jobs.enqueue(UPLOAD_JOB_TYPE, payload(corpus, MIXED, tmp_path))
        async with make_worker(env, "ocr-1"):
            job = await until_finished(jobs, job_id, 180)
    finally:
        await services.aclose()
    assert job.status == JobStatus.COMPLETED, job.error
    document = await env["documents"].get(job.result["document_id"])
    assert document.status == DocumentStatus.COMPLETED
    assert document.metadata["ocr_skipped_pages"] == [2]
    assert document.metadata["ocr_warnings"][0].startswith("page 2 was skipped: OCR failed")
    chunks = env["vectors"].document_chunks("risk-docs", job.result["document_id"])
    assert chunks and all(meta["page_end"] == 1 and "ocr" not in meta
                          for _id, _text, meta in chunks)
