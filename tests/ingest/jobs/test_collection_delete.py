"""collection_delete: every physical collection, every registry entry and the alias go."""

from __future__ import annotations

from typing import Any

import pytest
from jobs_support import MEMO, NOTE, NOTE_QUERY, JobsEnv, run_job

from docworkers.errors import InvalidPayloadError
from docworkers.ingest.aliases import CollectionAliases
from docworkers.ingest.document import Chunk
from docworkers.ingest.jobs.collection_delete import (
    COLLECTION_DELETE_JOB_TYPE,
    CollectionDeletePayload,
    CollectionDeleteWorker,
)
from docworkers.queue import JobStatus


def leave_a_stray_version(env: JobsEnv, name: str) -> None:
    """What a reindex that crashed before its switch leaves behind."""
    chunk = Chunk(index=0, text="left behind", start_char=0, end_char=11, token_count=2)
    env.vectors.replace_document(name, "stray", [chunk], env.embedder.embed([chunk.text]), [{}])


async def test_drops_everything_of_the_collection_and_a_rerun_is_a_no_op(env: JobsEnv) -> None:
    memo = await env.ingest(MEMO, "trash")
    await env.ingest(NOTE, "trash")
    kept = await env.ingest(NOTE, "keep")
    leave_a_stray_version(env, "trash--v3")
    assert env.collections() == ["keep", "trash", "trash--v3"]

    payload = {"collection": "trash"}
    job = await run_job(CollectionDeleteWorker(env.config()), env.jobs,
                        COLLECTION_DELETE_JOB_TYPE, payload)
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result == {"collection": "trash", "existed": True,
                          "dropped": ["trash", "trash--v3"], "documents_deleted": 2}
    assert env.collections() == ["keep"]
    assert await env.documents.collections() == ["keep"]
    assert await env.documents.list_documents("trash") == []
    assert await env.documents.get(memo.document_id) is None
    assert (await env.search("keep", NOTE_QUERY))[0].document_id == kept.document_id
    assert await env.search("trash", NOTE_QUERY) == []

    again = await run_job(CollectionDeleteWorker(env.config()), env.jobs,
                          COLLECTION_DELETE_JOB_TYPE, payload)
    assert again.status == JobStatus.COMPLETED, again.error
    assert again.result == {"collection": "trash", "existed": False, "dropped": [],
                            "documents_deleted": 0}
    assert env.collections() == ["keep"]
    assert env.locks() == []
    assert env.redis.keys("dw:{documents}:alias:*") == []


async def test_drops_the_version_the_alias_names(env: JobsEnv) -> None:
    leave_a_stray_version(env, "trash--v2")
    aliases = CollectionAliases.for_documents(env.documents)
    async with aliases.lock("trash", owner="reindex-job"):
        await aliases.switch("trash", "trash--v2", owner="reindex-job")
    job = await run_job(CollectionDeleteWorker(env.config()), env.jobs,
                        COLLECTION_DELETE_JOB_TYPE, {"collection": "trash"})
    assert job.status == JobStatus.COMPLETED, job.error
    assert job.result["dropped"] == ["trash--v2"] and env.collections() == []
    assert await aliases.target("trash") is None


async def test_waits_for_a_running_reindex_of_the_collection(env: JobsEnv) -> None:
    await env.ingest(NOTE, "busy")
    aliases = CollectionAliases.for_documents(env.documents)
    async with aliases.lock("busy", owner="reindex-job"):
        job = await run_job(CollectionDeleteWorker(env.config()), env.jobs,
                            COLLECTION_DELETE_JOB_TYPE, {"collection": "busy"})
    assert job.status == JobStatus.DEAD  # retryable, and this test allows no retries
    assert job.error is not None and job.error.code == "collection_busy"
    assert "reindex-job" in job.error.message
    assert env.collections() == ["busy"] and len(await env.documents.list_documents("busy")) == 1
    assert env.locks() == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "collection"),
        ({"collection": "x"}, "collection"),
        ({"collection": "docs--v2"}, "physical version"),
        ({"collection": "docs", "force": True}, "force"),
    ],
)
def test_invalid_payloads_name_the_field(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        CollectionDeletePayload.parse(payload)
