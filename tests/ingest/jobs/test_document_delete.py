"""document_delete: chunks and registry entry go; a second run finds nothing and succeeds."""

from __future__ import annotations

from typing import Any

import pytest
from jobs_support import MEMO, MEMO_QUERY, NOTE, NOTE_QUERY, JobsEnv, run_job

from docworkers.errors import InvalidPayloadError
from docworkers.ingest.document_repository import DocumentStatus
from docworkers.ingest.jobs.document_delete import (
    DOCUMENT_DELETE_JOB_TYPE,
    DocumentDeletePayload,
    DocumentDeleteWorker,
)
from docworkers.queue import JobStatus


async def test_delete_removes_chunks_and_entry_and_a_rerun_is_a_no_op(env: JobsEnv) -> None:
    memo = await env.ingest(MEMO)
    note = await env.ingest(NOTE)
    assert (await env.search("docs", MEMO_QUERY))[0].document_id == memo.document_id

    payload = {"document_id": memo.document_id}
    job = await run_job(DocumentDeleteWorker(env.config()), env.jobs, DOCUMENT_DELETE_JOB_TYPE,
                        payload)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result == {"document_id": memo.document_id, "deleted": True,
                          "collection": "docs", "chunks_deleted": memo.chunk_count}
    assert job.progress == 100
    assert await env.documents.get(memo.document_id) is None
    assert env.vectors.count_document_chunks("docs", memo.document_id) == 0
    remaining = await env.documents.list_documents("docs")
    assert [d.document_id for d in remaining] == [note.document_id]
    assert remaining[0].status == DocumentStatus.COMPLETED
    assert env.vectors.count_document_chunks("docs", note.document_id) == note.chunk_count
    hits = await env.search("docs", MEMO_QUERY, k=10)
    assert hits and {h.document_id for h in hits} == {note.document_id}
    assert (await env.search("docs", NOTE_QUERY))[0].document_id == note.document_id

    again = await run_job(DocumentDeleteWorker(env.config()), env.jobs,
                          DOCUMENT_DELETE_JOB_TYPE, payload)
    assert again.status == JobStatus.COMPLETED, again.error
    assert again.result == {"document_id": memo.document_id, "deleted": False,
                            "collection": None, "chunks_deleted": 0}
    assert env.vectors.count_document_chunks("docs", note.document_id) == note.chunk_count
    assert env.locks() == []


async def test_a_crash_between_chunks_and_entry_is_finished_by_the_rerun(env: JobsEnv) -> None:
    note = await env.ingest(NOTE)
    env.vectors.delete_document("docs", note.document_id)  # the first run died right here
    job = await run_job(DocumentDeleteWorker(env.config()), env.jobs, DOCUMENT_DELETE_JOB_TYPE,
                        {"document_id": note.document_id})
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result["deleted"] is True and job.result["chunks_deleted"] == 0
    assert await env.documents.get(note.document_id) is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "document_id"),
        ({"document_id": ""}, "document_id"),
        ({"document_id": "../etc"}, "document_id"),
        ({"document_id": "abc", "collection": "docs"}, "collection"),
    ],
)
def test_invalid_payloads_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPayloadError, match=field):
        DocumentDeletePayload.parse(payload)
