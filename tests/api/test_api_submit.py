"""``POST /api/jobs``: document jobs validated, queued on their type's queue, run by a real
worker of that type, and found again by id, list, stats and workers."""

from __future__ import annotations

import asyncio
from typing import Any

from api_support import ApiClient, wait_for_job

from docworkers.ingest.document import Chunk
from docworkers.ingest.document_repository import DocumentRecord, DocumentStatus

TEXTS = ["Knead the dough for ten minutes, then let it rise for an hour.",
         "Bake the bread at 220 degrees until the crust is golden."]


async def seed(api: ApiClient, collection: str, physical: str | None = None) -> str:
    """One completed document of ``collection`` with two chunks in Chroma's ``physical``
    collection (default: the same name); its id."""
    runtime, document_id = api.runtime, "0" * 31 + "1"
    chunks = [Chunk(index=i, text=t, start_char=0, end_char=len(t), token_count=9)
              for i, t in enumerate(TEXTS)]
    embeddings = await asyncio.to_thread(runtime.embedder.embed, TEXTS)
    await asyncio.to_thread(runtime.vectors.replace_document, physical or collection,
                            document_id, chunks,
                            embeddings, [{"filename": "bread.md"}] * 2)
    await runtime.documents.register(DocumentRecord(
        document_id=document_id, collection=collection, filename="bread.md",
        status=DocumentStatus.COMPLETED))
    return document_id


async def test_a_submitted_delete_runs_on_its_queue_and_is_found_by_id(api: ApiClient) -> None:
    document_id = await seed(api, "kitchen")
    response = await api.post("/api/jobs", json={"type": "document_delete", "priority": 5,
                                                 "payload": {"document_id": document_id}})
    assert response.status_code == 202, response.text
    reply = response.json()
    assert reply["queue"] == "api.document_delete" and reply["status"] == "queued"
    assert response.headers["location"] == f"/api/jobs/{reply['job_id']}"
    assert await api.runtime.jobs.find_job(reply["job_id"]) is None  # not the upload queue

    async with api.runtime.job_worker("document_delete", "api-test-deleter"):
        job = await wait_for_job(api, reply["job_id"])
        workers = (await api.get("/api/workers")).json()["workers"]
    assert [w["worker_name"] for w in workers] == ["api-test-deleter"]
    assert job["status"] == "completed" and job["priority"] == 5
    assert job["result"]["chunks_deleted"] == 2
    assert (await api.get(f"/api/documents/{document_id}")).status_code == 404
    listed = (await api.get("/api/jobs?type=document_delete")).json()["jobs"]
    assert [j["id"] for j in listed] == [reply["job_id"]]
    stats = (await api.get("/api/jobs/stats")).json()
    assert stats["completed_by_type"] == {"document_delete": 1}
    assert stats["queues"]["api.document_delete"]["completed"] == 1
    retry = await api.post(f"/api/jobs/{reply['job_id']}/retry")
    assert retry.status_code == 409  # a completed job; found on its queue, refused by state


async def test_invalid_jobs_are_422_naming_each_field(api: ApiClient) -> None:
    bad = await api.post("/api/jobs", json={"type": "vector_reindex", "payload": {
        "collection": "docs--v3", "chunk_size": 0, "colour": "red"}})
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "invalid_payload"
    assert set(error["fields"]) == {"payload.collection", "payload.chunk_size",
                                    "payload.colour"}
    assert "physical version" in error["fields"]["payload.collection"]
    for job_type, message in (("resize", "unknown job type"),
                              ("document_upload", "/api/documents/upload"),
                              ("bulk_import", "server's disks")):
        refused = await api.post("/api/jobs", json={"type": job_type, "payload": {}})
        assert refused.status_code == 422, job_type
        assert message in refused.json()["error"]["fields"]["type"]
    no_payload = await api.post("/api/jobs", json={"type": "collection_delete"})
    assert no_payload.status_code == 422
    assert no_payload.json()["error"]["fields"] == {"payload.collection": "Field required"}
    assert (await api.get("/api/jobs")).json()["count"] == 0


async def test_collections_show_and_delete_the_version_searches_use(api: ApiClient) -> None:
    document_id = await seed(api, "kitchen", "kitchen--v2")
    await api.runtime.documents.client.set("dw:{documents}:alias:kitchen", "kitchen--v2")
    listed = (await api.get("/api/collections")).json()["collections"]
    assert listed == [{"name": "kitchen", "document_count": 1, "chunk_count": 2}]
    chunks = (await api.get(f"/api/documents/{document_id}/chunks")).json()
    assert chunks["collection"] == "kitchen" and chunks["total"] == 2  # from kitchen--v2
    search: Any = (await api.post("/api/search", json={"collection": "kitchen",
                                                       "query": "baking bread"})).json()
    assert search["hits"][0]["document_id"] == document_id
    dropped = await api.delete("/api/collections/kitchen")
    assert dropped.status_code == 200 and dropped.json()["documents_deleted"] == 1
    assert (await api.get("/api/collections")).json()["collections"] == []
