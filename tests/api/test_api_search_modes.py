"""``POST /api/search`` with ``mode``: keyword, dense and hybrid hits say who found them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from api_support import running_api

from docworkers.ingest.document import Chunk
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.keyword_side import keyword_chunks
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.settings import Settings

CODE = "ZX-4471-Q"
TEXTS = [f"Spare part {CODE} fits the left hinge of the cabinet door.",
         "Every cabinet ships with two shelves and four screws.",
         "Knead the dough for ten minutes, then let it rise for an hour."]
DOCUMENT = "0" * 32


async def seed(settings: Settings, embedder: Any) -> None:
    """One document's chunks on both sides of collection "parts", as an upload leaves them."""
    chunks = [Chunk(index=i, text=t, start_char=0, end_char=len(t), token_count=9)
              for i, t in enumerate(TEXTS)]
    client = aioredis.Redis.from_url(settings.redis_url or "", decode_responses=True)
    with ChromaVectorRepository.from_path(Path(settings.chroma_path or "")) as vectors:
        vectors.replace_document("parts", DOCUMENT, chunks, embedder.embed(TEXTS),
                                 [{"filename": "parts.txt"}] * len(chunks))
    try:
        await LexicalIndex.for_documents(DocumentRepository(client)).replace_document(
            "parts", DOCUMENT, keyword_chunks(DOCUMENT, chunks))
    finally:
        await client.aclose()


async def test_search_mode_in_the_api(settings: Settings, embedder: Any) -> None:
    await seed(settings, embedder)
    async with running_api(settings, embedder) as api:
        keyword = await api.post("/api/search", json={"collection": "parts", "query": CODE,
                                                      "mode": "keyword"})
        assert keyword.status_code == 200, keyword.text
        body = keyword.json()
        assert body["mode"] == "keyword"
        assert [(h["chunk_id"], h["found_by"], h["dense_rank"], h["keyword_rank"])
                for h in body["hits"]] == [(f"{DOCUMENT}:0", ["keyword"], None, 1)]

        hybrid = (await api.post("/api/search", json={"collection": "parts",
                                                      "query": CODE})).json()
        assert hybrid["mode"] == "hybrid" and len(hybrid["hits"]) == 3
        first = hybrid["hits"][0]
        assert first["chunk_id"] == f"{DOCUMENT}:0" and first["found_by"] == ["dense", "keyword"]
        assert first["keyword_rank"] == 1 and first["dense_rank"] >= 1

        dense = (await api.post("/api/search", json={"collection": "parts", "query": CODE,
                                                     "mode": "dense", "k": 2})).json()
        assert [(h["found_by"], h["dense_rank"]) for h in dense["hits"]] == [
            (["dense"], 1), (["dense"], 2)]

        grouped = (await api.post("/api/search", json={
            "collection": "parts", "query": "cabinet", "group_by_document": True})).json()
        assert grouped["group_by_document"] is True
        assert len(grouped["hits"]) == 1  # three chunks, one document: its best chunk
        assert grouped["hits"][0]["chunk_id"] in {f"{DOCUMENT}:0", f"{DOCUMENT}:1"}

        bad = await api.post("/api/search", json={"query": CODE, "mode": "sparse"})
        assert bad.status_code == 422
        assert "mode" in bad.json()["error"]["fields"], bad.text
