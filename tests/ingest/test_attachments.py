"""An email's attachments become searchable child documents, once: real worker, Redis, Chroma."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from job_waits import until_finished
from upload_support import make_worker, payload

from docworkers.ingest.jobs.children import parent_tag
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.search import SearchService
from docworkers.queue import JobFilter, JobStatus, RedisJobRepository

MAIL = "formats/memo-with-attachments.eml"


async def test_email_attachments_become_searchable_children_and_a_rerun_adds_none(
        ingest_env: dict[str, Any], corpus: Path, tmp_path: Path) -> None:
    jobs: RedisJobRepository = ingest_env["jobs"]
    body = payload(corpus, MAIL, tmp_path)
    async with make_worker(ingest_env, concurrency=2):
        await jobs.enqueue(UPLOAD_JOB_TYPE, body, job_id="mail-1")
        parent = await until_finished(jobs, "mail-1")
        assert parent.status == JobStatus.COMPLETED, parent.error
        assert parent.result["children"] == ["mail-1:0", "mail-1:1"]  # logo.png is skipped
        children = [await until_finished(jobs, child) for child in parent.result["children"]]
        assert [child.status for child in children] == [JobStatus.COMPLETED] * 2
        assert [child.payload["filename"] for child in children] == ["fake-memo.pdf",
                                                                     "simple.docx"]
        # The same job runs again (a lost lease, an operator's retry): same children, no more.
        assert await jobs.delete_job("mail-1")
        await jobs.enqueue(UPLOAD_JOB_TYPE, body, job_id="mail-1")
        rerun = await until_finished(jobs, "mail-1")
        assert rerun.status == JobStatus.COMPLETED and rerun.result["children"] == \
            parent.result["children"]
    tagged = await jobs.list_jobs(JobFilter.of(tags=[parent_tag("mail-1")]))
    assert sorted(job.id for job in tagged) == ["mail-1:0", "mail-1:1"]
    assert all(job.status == JobStatus.COMPLETED for job in tagged)
    documents = await ingest_env["documents"].list_documents("risk-docs")
    assert sorted(doc.filename for doc in documents) == [
        "fake-memo.pdf", "memo-with-attachments.eml", "simple.docx"]
    search = SearchService(ingest_env["embedder"], ingest_env["vectors"])
    memo = await search.search("risk-docs", "how many bottles of water were delivered", k=1)
    assert memo[0].filename == "fake-memo.pdf" and "20,000 bottles of water" in memo[0].text
    thoughts = await search.search("risk-docs", "my favorite things: parrots and hockey", k=1)
    assert thoughts[0].filename == "simple.docx"
    for document in documents:
        ids = ingest_env["vectors"].document_chunk_ids("risk-docs", document.document_id)
        assert ids and len(ids) == len(set(ids))
