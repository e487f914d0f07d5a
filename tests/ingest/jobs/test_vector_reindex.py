"""vector_reindex: a new physical collection is built while searches use the old one, then the
alias switches and the old collection is dropped."""

from __future__ import annotations

from typing import Any

import pytest
from jobs_support import (
    MEMO,
    NOTE,
    NOTE_QUERY,
    RIGHTS,
    RIGHTS_QUERY,
    JobsEnv,
    run_job,
)

from docworkers.errors import InvalidPayloadError
from docworkers.ingest.aliases import CollectionAliases, resolve_collection
from docworkers.ingest.document import Chunk
from docworkers.ingest.jobs.document_delete import delete_document
from docworkers.ingest.jobs.vector_reindex import (
    VECTOR_REINDEX_JOB_TYPE,
    VectorReindex,
    VectorReindexPayload,
    VectorReindexWorker,
)
from docworkers.queue import JobStatus

NEW_CHUNKING = {"collection": "docs", "chunking_strategy": "sentence", "chunk_size": 64}


def token_counts(env: JobsEnv, collection: str, document_id: str) -> list[int]:
    return [int(meta["token_count"])
            for _, _, meta in env.vectors.document_chunks(collection, document_id)]


async def test_searches_use_the_old_collection_until_the_switch(env: JobsEnv) -> None:
    rights = await env.ingest(RIGHTS)
    memo = await env.ingest(MEMO, extract_metadata=True)
    assert rights.chunk_count == 2 and max(token_counts(env, "docs", rights.document_id)) > 64
    stray = Chunk(index=0, text="left by a crashed attempt", start_char=0, end_char=25,
                  token_count=5)
    env.vectors.replace_document("docs--v1", "stray", [stray], env.embedder.embed([stray.text]),
                                 [{}])
    seen: list[tuple[str, str, int]] = []
    changed_meanwhile: list[str] = []

    async def watch(percent: int, message: str) -> None:
        if not message.startswith("re-embedding"):
            return
        hits = await env.search("docs", RIGHTS_QUERY)
        seen.append((await resolve_collection(env.documents, "docs"), hits[0].document_id,
                     int(hits[0].metadata["token_count"])))
        if not changed_meanwhile:  # an upload and a delete while the new collection is built
            changed_meanwhile.append((await env.ingest(NOTE)).document_id)
            await delete_document(env.documents, env.vectors, memo.document_id)

    reindex = VectorReindex(env.services, env.documents, env.vectors, drain_seconds=0.1)
    result = await reindex.run(VectorReindexPayload.parse(NEW_CHUNKING), job_id="reindex-1",
                               progress=watch)

    assert len(seen) >= 2 and all(name == "docs" for name, _, _ in seen)
    assert all(hit == rights.document_id and tokens > 64 for _, hit, tokens in seen)
    assert result.previous == "docs" and result.physical == "docs--v1"
    assert result.dropped == ["docs"] and result.documents == 2
    assert env.collections() == ["docs--v1"]
    assert await resolve_collection(env.documents, "docs") == "docs--v1"
    assert env.vectors.document_chunks("docs--v1", "stray") == []
    assert env.vectors.document_chunks("docs--v1", memo.document_id) == []
    new_counts = token_counts(env, "docs--v1", rights.document_id)
    assert len(new_counts) > rights.chunk_count and max(new_counts) <= 64
    record = await env.documents.get(rights.document_id)
    assert record is not None and record.chunk_count == len(new_counts)
    assert record.file_path.endswith("eng_spa.txt")
    hits = await env.search("docs", RIGHTS_QUERY)
    assert hits[0].document_id == rights.document_id and hits[0].metadata["strategy"] == "sentence"
    assert (await env.search("docs", NOTE_QUERY))[0].document_id == changed_meanwhile[0]
    assert result.chunks == len(new_counts) + 1
    assert env.locks() == []

    # The job runs again (a rerun after the switch): it builds the next version, drops the rest.
    job = await run_job(VectorReindexWorker(env.config(), drain_seconds=0.1), env.jobs,
                        VECTOR_REINDEX_JOB_TYPE, NEW_CHUNKING)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.progress == 100
    assert job.result["physical"] == "docs--v2" and job.result["dropped"] == ["docs--v1"]
    assert job.result["documents"] == 2 and job.result["chunks"] == result.chunks
    assert env.collections() == ["docs--v2"]
    assert token_counts(env, "docs--v2", rights.document_id) == new_counts
    assert (await env.search("docs", RIGHTS_QUERY))[0].document_id == rights.document_id
    assert env.locks() == []
    assert env.redis.get("dw:{documents}:alias:docs") == "docs--v2"


async def test_enrichment_is_kept_unless_the_payload_says_otherwise(env: JobsEnv) -> None:
    memo = await env.ingest(MEMO, extract_metadata=True, num_questions=2)
    note = await env.ingest(NOTE)
    reindex = VectorReindex(env.services, env.documents, env.vectors, drain_seconds=0)
    await reindex.run(VectorReindexPayload.parse({"collection": "docs"}), job_id="r-1")
    [(_, _, memo_meta)] = env.vectors.document_chunks("docs--v1", memo.document_id)
    [(_, _, note_meta)] = env.vectors.document_chunks("docs--v1", note.document_id)
    assert memo_meta["keywords"] and memo_meta["questions"] and memo_meta["title"]
    assert "keywords" not in note_meta
    await reindex.run(VectorReindexPayload.parse({"collection": "docs",
                                                  "extract_metadata": False,
                                                  "num_questions": 0}), job_id="r-2")
    [(_, _, memo_meta)] = env.vectors.document_chunks("docs--v2", memo.document_id)
    assert "keywords" not in memo_meta and "questions" not in memo_meta


async def test_a_reindex_reads_each_document_with_the_ocr_mode_of_its_upload(
        env: JobsEnv) -> None:
    memo = await env.ingest(MEMO, ocr="always")  # a digital page, read by OCR all the same
    note = await env.ingest(NOTE)
    [(_, _, before)] = env.vectors.document_chunks("docs", memo.document_id)
    assert before["ocr"] is True
    reindex = VectorReindex(env.services, env.documents, env.vectors, drain_seconds=0)
    await reindex.run(VectorReindexPayload.parse({"collection": "docs"}), job_id="r-ocr")
    [(_, _, after)] = env.vectors.document_chunks("docs--v1", memo.document_id)
    assert after["ocr"] is True and after["ocr_confidence"] == before["ocr_confidence"]
    [(_, _, plain)] = env.vectors.document_chunks("docs--v1", note.document_id)
    assert "ocr" not in plain


async def test_a_document_that_cannot_be_reread_fails_the_job_and_changes_nothing(
        env: JobsEnv) -> None:
    note = await env.ingest(NOTE)
    await env.documents.update(note.document_id, file_path="")  # uploaded before file_path
    job = await run_job(VectorReindexWorker(env.config()), env.jobs, VECTOR_REINDEX_JOB_TYPE,
                        NEW_CHUNKING)
    assert job.status == JobStatus.FAILED and job.retry_count == 0
    assert job.error is not None and job.error.code == "reindex_source"
    assert "no stored file recorded" in job.error.message
    assert await CollectionAliases.for_documents(env.documents).target("docs") is None
    assert env.collections() == ["docs"]
    assert (await env.search("docs", NOTE_QUERY))[0].document_id == note.document_id
    assert env.locks() == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"collection": "docs", "chunking_strategy": "magic"}, "chunking_strategy"),
        ({"collection": "docs", "chunk_size": 64, "chunk_overlap": 64}, "chunk_overlap"),
        ({"collection": "docs--v3"}, "physical version"),
        ({"collection": "docs", "chunksize": 64}, "chunksize"),
    ],
)
def test_invalid_payloads_say_what_is_wrong(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        VectorReindexPayload.parse(payload)
