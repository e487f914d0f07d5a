"""Uploads ingested by in-process workers (the real model): live progress, search, documents,
collections and the metrics they leave behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from api_support import (
    PAPER,
    PHRASE,
    ApiClient,
    parse_sse,
    running_api,
    upload_files,
    wait_for_job,
)

from docworkers.settings import Settings

NOTE = (b"# Wind tunnels\n\nA wind tunnel blows air past a fixed model so engineers can measure "
        b"lift and drag.\n\nThe first closed-circuit tunnel was built in 1909.\n")


async def test_events_stream_progress_to_100_and_metrics_see_the_job(
        settings: Settings, embedder: Any) -> None:
    async with running_api(settings, embedder, with_workers=1) as api:
        workers = (await api.get("/api/workers")).json()
        assert workers["count"] == 1
        assert workers["workers"][0]["worker_name"].startswith("api-worker-0@")
        upload = await api.post("/api/documents/upload", files=upload_files("tunnels.md", NOTE),
                                data={"collection": "notes"})
        job_id = upload.json()["job_id"]
        response = await api.get(f"/api/jobs/{job_id}/events")
        assert response.status_code == 200
        events = parse_sse(response.text)
        assert {name for name, _ in events} == {"job"}
        progress = [data["progress"] for _, data in events]
        assert progress == sorted(progress) and progress[-1] == 100
        final = events[-1][1]
        assert final["status"] == "completed" and final["message"] == "upload completed"
        assert final["result"]["chunk_count"] >= 1
        assert set(final["timings"]["stages_ms"]) >= {"parsing", "embedding", "storing"}
        assert final["timings"]["processing_ms"] is not None
        ids = [int(line[4:]) for line in response.text.splitlines() if line.startswith("id: ")]
        assert ids == list(range(1, len(events) + 1))
        # This process's worker shows live numbers, not its last heartbeat's (20 s apart). The
        # worker counts a job just after storing its completion, hence the short wait.
        for _ in range(100):
            [worker] = (await api.get("/api/workers")).json()["workers"]
            if worker["jobs_succeeded"] == 1:
                break
            await asyncio.sleep(0.02)
        assert worker["jobs_succeeded"] == 1

        metrics = (await api.get("/metrics")).text
    for line in (
        'docworkers_jobs{queue="api",status="completed"} 1.0',
        'docworkers_jobs_completed_total{queue="api",type="document_upload"} 1.0',
        'docworkers_job_processing_seconds_count{type="document_upload"} 1.0',
        'docworkers_job_stage_seconds_count{stage="embedding"} 1.0',
        'docworkers_uploads_total{outcome="accepted"} 1.0',
        'docworkers_queue_depth{queue="api"} 0.0',
        'docworkers_workers{queue="api"} 1.0',
        'docworkers_job_retries_total{queue="api"} 0.0',
        'docworkers_jobs_dead_lettered_total{queue="api"} 0.0',
        "docworkers_redis_up 1.0",
    ):
        assert line in metrics, line
    assert "docworkers_embedding_texts_total" in metrics
    assert 'docworkers_worker_concurrency{bound="current",worker="api-worker-0@' in metrics
    assert 'docworkers_worker_concurrency{bound="max",worker="api-worker-0@' in metrics
    assert 'docworkers_worker_in_flight{worker="api-worker-0@' in metrics
    assert "docworkers_upload_bytes_total" in metrics


async def test_uploaded_paper_is_searchable_then_deleted(settings: Settings, embedder: Any,
                                                         corpus: Path) -> None:
    async with running_api(settings, embedder, with_workers=1) as api:
        content = (corpus / PAPER).read_bytes()
        upload = await api.post("/api/documents/upload",
                                files=upload_files("layout-parser.pdf", content),
                                data={"collection": "papers"})
        assert upload.status_code == 202
        job = await wait_for_job(api, upload.json()["job_id"])
        assert job["status"] == "completed", job["error"]
        document_id = job["result"]["document_id"]

        found = await api.post("/api/search", json={
            "collection": "papers", "k": 3,
            "query": "learning-based framework reduces manual specification of rules"})
        assert found.status_code == 200
        hits = found.json()["hits"]
        assert PHRASE in hits[0]["text"].replace("\n", " ")
        assert hits[0]["document_id"] == document_id
        assert hits[0]["filename"] == "layout-parser.pdf"
        assert hits[0]["page_start"] == 2 and hits[0]["page_end"] == 2
        # hybrid (the default): the fused score, z-scores of cosine and BM25, best first
        assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits),
                                                        reverse=True)
        assert hits[0]["found_by"] == ["dense", "keyword"]
        filtered = await api.post("/api/search", json={
            "collection": "papers", "query": "layout", "filters": {"page_start": {"$gte": 2}}})
        assert filtered.status_code == 200
        assert {h["page_start"] for h in filtered.json()["hits"]} == {2}

        listed = (await api.get("/api/documents?collection=papers")).json()
        assert [d["document_id"] for d in listed["documents"]] == [document_id]
        document = (await api.get(f"/api/documents/{document_id}")).json()
        assert document["status"] == "completed" and document["page_count"] == 2
        collections = (await api.get("/api/collections")).json()["collections"]
        assert collections == [{"name": "papers", "document_count": 1,
                                "chunk_count": job["result"]["chunk_count"]}]

        deleted = await api.delete(f"/api/documents/{document_id}")
        assert deleted.status_code == 200
        assert deleted.json()["chunks_deleted"] == job["result"]["chunk_count"]
        assert (await api.get(f"/api/documents/{document_id}")).status_code == 404
        assert (await api.delete(f"/api/documents/{document_id}")).status_code == 404
        after = await api.post("/api/search", json={"collection": "papers", "query": "layout"})
        assert after.json()["hits"] == []

        dropped = await api.delete("/api/collections/papers")
        assert dropped.status_code == 200
        assert (await api.get("/api/collections")).json()["collections"] == []
        assert (await api.delete("/api/collections/papers")).status_code == 404


async def test_search_and_document_validation(api: ApiClient) -> None:
    cases = [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "collection": "a b"}, "collection"),
        ({"query": "x", "top": 3}, "top"),
        ({"query": "x", "filters": {"$or": []}}, "filters.$or"),
        ({"query": "x", "filters": {"page_start": {"$regex": "."}}}, "filters.page_start"),
        ({"query": "x", "filters": {"page_start": [1, 2]}}, "filters.page_start"),
    ]
    for body, field in cases:
        response = await api.post("/api/search", json=body)
        assert response.status_code == 422, body
        assert field in response.json()["error"]["fields"], response.text
    empty = await api.post("/api/search", json={"query": "anything", "collection": "nothing"})
    assert empty.status_code == 200 and empty.json()["hits"] == []
    assert (await api.get("/api/documents/deadbeef")).status_code == 404
    assert (await api.get("/api/documents/..%2F..%2Fetc")).status_code in (404, 422)
    assert (await api.get("/api/documents?collection=x")).status_code == 422
    assert (await api.delete("/api/collections/no-such-collection")).status_code == 404
    config = (await api.get("/api/config")).json()
    assert "recursive" in config["chunking_strategies"] and config["max_chunk_size"] == 254
    assert {".pdf", ".doc", ".xlsx", ".msg", ".eml", ".md"} <= set(config["extensions"])
