"""metadata_extract: stored documents get what an enriching upload gives, without re-embedding."""

from __future__ import annotations

from typing import Any

import pytest
from jobs_support import LIST, LIST_TITLE, MEMO, MEMO_QUERY, NOTE, JobsEnv, run_job

from docworkers.errors import EmptyDocumentError, InvalidPayloadError
from docworkers.ingest.jobs.metadata_extract import (
    METADATA_EXTRACT_JOB_TYPE,
    MetadataExtractPayload,
    MetadataExtractWorker,
    rejoin,
)
from docworkers.queue import JobStatus


def comparable(metadata: dict[str, Any]) -> dict[str, Any]:
    """Chunk metadata without what differs between two collections holding the same file."""
    return {k: v for k, v in metadata.items() if k not in ("document_id", "collection")}


async def test_one_document_gets_the_metadata_an_enriching_upload_gives(env: JobsEnv) -> None:
    plain = await env.ingest(LIST, "plain")
    enriched = await env.ingest(LIST, "enriched", extract_metadata=True, num_questions=2)
    before = env.vectors.document_chunks("plain", plain.document_id)
    assert "keywords" not in before[0][2] and "title" not in before[0][2]

    payload = {"document_id": plain.document_id, "num_questions": 2}
    job = await run_job(MetadataExtractWorker(env.config()), env.jobs,
                        METADATA_EXTRACT_JOB_TYPE, payload)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result == {"documents": 1, "chunks": plain.chunk_count, "skipped": [],
                          "titles": {plain.document_id: LIST_TITLE}}
    after = env.vectors.document_chunks("plain", plain.document_id)
    reference = env.vectors.document_chunks("enriched", enriched.document_id)
    assert after[0][2]["title"] == LIST_TITLE and after[0][2]["language"] == "en"
    assert after[0][2]["keywords"] and after[0][2]["questions"]
    assert [comparable(meta) for _, _, meta in after] == \
        [comparable(meta) for _, _, meta in reference]
    assert [(i, t) for i, t, _ in after] == [(i, t) for i, t, _ in before]
    record = await env.documents.get(plain.document_id)
    reference_record = await env.documents.get(enriched.document_id)
    assert record is not None and reference_record is not None
    for key in ("title", "language", "word_count", "author"):
        assert record.metadata[key] == reference_record.metadata[key], key

    again = await run_job(MetadataExtractWorker(env.config()), env.jobs,
                          METADATA_EXTRACT_JOB_TYPE, payload)
    assert again.status == JobStatus.COMPLETED, again.error
    assert again.result == job.result
    assert env.vectors.document_chunks("plain", plain.document_id) == after
    assert env.locks() == []


async def test_a_collection_is_enriched_in_place_without_re_embedding(env: JobsEnv) -> None:
    memo = await env.ingest(MEMO)
    note = await env.ingest(NOTE)
    hits_before = await env.search("docs", MEMO_QUERY, k=2)
    job = await run_job(MetadataExtractWorker(env.config()), env.jobs,
                        METADATA_EXTRACT_JOB_TYPE, {"collection": "docs"})
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result["documents"] == 2 and job.result["skipped"] == []
    assert job.result["titles"] == {memo.document_id: "fake-memo",
                                    note.document_id: "This is a test document to use for "
                                                      "unit tests."}
    hits_after = await env.search("docs", MEMO_QUERY, k=2)
    assert [(h.chunk_id, round(h.score, 6)) for h in hits_after] == \
        [(h.chunk_id, round(h.score, 6)) for h in hits_before]
    assert hits_after[0].metadata["keywords"] and "questions" not in hits_after[0].metadata
    memo_record = await env.documents.get(memo.document_id)
    assert memo_record is not None and memo_record.metadata["word_count"] > 20


async def test_documents_without_chunks_are_skipped_or_refused(env: JobsEnv) -> None:
    await env.ingest(NOTE)
    with pytest.raises(EmptyDocumentError):
        await env.ingest("text/empty.txt")
    failed = [d for d in await env.documents.list_documents("docs") if d.error_code]
    assert len(failed) == 1

    job = await run_job(MetadataExtractWorker(env.config()), env.jobs,
                        METADATA_EXTRACT_JOB_TYPE, {"collection": "docs"})
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result["documents"] == 1
    assert job.result["skipped"] == [{"document_id": failed[0].document_id,
                                      "reason": "status is failed"}]

    refused = await run_job(MetadataExtractWorker(env.config()), env.jobs,
                            METADATA_EXTRACT_JOB_TYPE, {"document_id": failed[0].document_id})
    assert refused.status == JobStatus.FAILED and refused.retry_count == 0
    missing = await run_job(MetadataExtractWorker(env.config()), env.jobs,
                            METADATA_EXTRACT_JOB_TYPE, {"document_id": "0" * 32})
    assert missing.status == JobStatus.FAILED and missing.error is not None
    assert missing.error.code == "document_not_found"


async def test_chunk_metadata_updates_merge_and_never_touch_structure(env: JobsEnv) -> None:
    note = await env.ingest(NOTE)
    [(chunk_id, text, before)] = env.vectors.document_chunks("docs", note.document_id)
    updated = env.vectors.update_chunk_metadata(
        "docs", [chunk_id, "no-such-chunk"],
        [{"keywords": ["a", "b"], "chunk_index": 99, "document_id": "other"}, {"x": 1}])
    assert updated == 1
    [(same_id, same_text, after)] = env.vectors.document_chunks("docs", note.document_id)
    assert (same_id, same_text) == (chunk_id, text)
    assert after == {**before, "keywords": "a,b"}
    assert env.vectors.update_chunk_metadata("missing", [chunk_id], [{"x": 1}]) == 0
    assert env.vectors.document_chunks("missing", note.document_id) == []


def test_text_is_rebuilt_from_overlapping_chunks() -> None:
    text = "alpha beta gamma delta"
    rows = [("d:0", "alpha beta", {"start_char": 0, "end_char": 10}),
            ("d:1", "beta gamma", {"start_char": 6, "end_char": 16}),
            ("d:2", "delta", {"start_char": 17, "end_char": 22})]
    assert rejoin(rows) == text.replace("gamma delta", "gamma\ndelta")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "exactly one of document_id and collection"),
        ({"document_id": "abc", "collection": "docs"}, "exactly one"),
        ({"collection": "docs", "num_questions": 11}, "num_questions"),
        ({"collection": "docs", "extract_metadata": False}, "nothing to do"),
        ({"collection": "docs", "keywords": 3}, "keywords"),
    ],
)
def test_invalid_payloads_say_what_is_wrong(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        MetadataExtractPayload.parse(payload)
