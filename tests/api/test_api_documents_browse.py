"""The endpoints behind the dashboard's documents view: documents paged and filtered by
collection and status (with their total), a document's chunks with their pages, and
collections with their document counts. Real uploads, ingested by an in-process worker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from api_support import ApiClient, running_api, upload_files, wait_for_job

from docworkers.settings import Settings


async def upload(api: ApiClient, path: Path, collection: str, name: str | None = None
                 ) -> dict[str, Any]:
    content = await asyncio.to_thread(path.read_bytes)
    response = await api.post("/api/documents/upload", data={"collection": collection},
                              files=upload_files(name or path.name, content))
    assert response.status_code == 202, response.text
    return await wait_for_job(api, response.json()["job_id"])


async def test_documents_page_by_collection_and_status_with_totals(
        settings: Settings, embedder: Any, corpus: Path) -> None:
    async with running_api(settings, embedder, with_workers=1) as api:
        memo = await upload(api, corpus / "pdf/fake-memo.pdf", "memos")
        book = await upload(api, corpus / "text/book-war-and-peace-1p.txt", "books")
        locked = await upload(api, corpus / "pdf/password.pdf", "memos", "locked.pdf")
        assert memo["status"] == book["status"] == "completed"
        assert locked["status"] in ("failed", "dead")

        everything = (await api.get("/api/documents")).json()
        # Newest first across collections, not collection by collection.
        assert [d["filename"] for d in everything["documents"]] == [
            "locked.pdf", "book-war-and-peace-1p.txt", "fake-memo.pdf"]
        assert everything["total"] == 3 and everything["count"] == 3

        page = (await api.get("/api/documents?limit=1&offset=1")).json()
        assert [d["filename"] for d in page["documents"]] == ["book-war-and-peace-1p.txt"]
        assert page["total"] == 3 and page["count"] == 1

        failed = (await api.get("/api/documents?status=failed")).json()
        assert [d["filename"] for d in failed["documents"]] == ["locked.pdf"]
        assert failed["total"] == 1
        [broken] = failed["documents"]
        assert broken["error_code"] and "protected by a password" in broken["error_message"]
        assert broken["chunk_count"] == 0

        memos = (await api.get("/api/documents?collection=memos&status=completed")).json()
        assert [d["filename"] for d in memos["documents"]] == ["fake-memo.pdf"]
        assert memos["total"] == 1
        assert memos["documents"][0]["page_count"] == 1
        none = (await api.get("/api/documents?collection=books&status=failed")).json()
        assert none == {"documents": [], "count": 0, "total": 0, "limit": 100, "offset": 0}

        wrong = await api.get("/api/documents?status=lost")
        assert wrong.status_code == 422 and "status" in wrong.text

        collections = (await api.get("/api/collections")).json()["collections"]
        assert collections == [
            {"name": "books", "document_count": 1, "chunk_count": book["result"]["chunk_count"]},
            {"name": "memos", "document_count": 2, "chunk_count": memo["result"]["chunk_count"]},
        ]


async def test_a_documents_chunks_in_order_with_pages(
        settings: Settings, embedder: Any, corpus: Path) -> None:
    async with running_api(settings, embedder, with_workers=1) as api:
        job = await upload(api, corpus / "pdf/fake-memo.pdf", "books")
        document_id = job["result"]["document_id"]
        count = job["result"]["chunk_count"]
        # A small chunk size, so the text has several chunks to page through.
        book = corpus / "text/book-war-and-peace-1p.txt"
        small = await api.post("/api/documents/upload", data={
            "collection": "books", "chunk_size": "64"}, files=upload_files(
            "small.txt", await asyncio.to_thread(book.read_bytes) + b"\nEnd."))
        small_job = await wait_for_job(api, small.json()["job_id"])
        small_id = small_job["result"]["document_id"]
        small_count = small_job["result"]["chunk_count"]
        assert small_count >= 3

        whole = (await api.get(f"/api/documents/{document_id}/chunks")).json()
        assert whole["total"] == count == whole["count"] and whole["collection"] == "books"
        assert [(c["page_start"], c["page_end"]) for c in whole["chunks"]] == [(1, 1)] * count

        chunks = (await api.get(f"/api/documents/{small_id}/chunks?limit=2&offset=1")).json()
        assert chunks["total"] == small_count and chunks["count"] == 2
        assert [c["chunk_index"] for c in chunks["chunks"]] == [1, 2]
        assert all(c["chunk_id"].startswith(small_id) and c["text"] for c in chunks["chunks"])
        everything = (await api.get(f"/api/documents/{small_id}/chunks?limit=1000")).json()
        assert "End." in everything["chunks"][-1]["text"]

        assert (await api.get("/api/documents/deadbeef/chunks")).status_code == 404
        assert (await api.delete(f"/api/documents/{small_id}")).status_code == 200
        assert (await api.get(f"/api/documents/{small_id}/chunks")).status_code == 404


async def test_openapi_documents_the_views_endpoints(api: ApiClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    listing = schema["paths"]["/api/documents"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"collection", "status", "limit",
                                                          "offset"}
    assert "total" in listing["description"]
    chunks = schema["paths"]["/api/documents/{document_id}/chunks"]["get"]
    assert chunks["summary"] and "404" in chunks["responses"]
    assert "document" in schema["paths"]["/api/collections"]["get"]["summary"]
