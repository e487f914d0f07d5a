"""The document registry's listing for the dashboard: pages newest first across collections with
their total, the status filter walked slice by slice (slices smaller than the collections here,
so several are read, and one ends exactly where a collection does), and the counts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from docworkers.ingest import document_repository
from docworkers.ingest.document_repository import (
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
)

FAILED, COMPLETED = DocumentStatus.FAILED, DocumentStatus.COMPLETED


@pytest.fixture
async def documents(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[DocumentRepository]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield DocumentRepository(client)
    await client.aclose()


async def add(documents: DocumentRepository, clean_redis: redis.Redis, number: int,
              collection: str, status: DocumentStatus, created: float) -> None:
    document_id = f"doc{number:02d}"
    await documents.register(DocumentRecord(document_id=document_id, collection=collection,
                                            filename=f"{document_id}.txt", status=status))
    # The creation time the index orders by, set exactly (ties included).
    clean_redis.zadd(documents.keys.collection(collection), {document_id: created})


async def test_pages_newest_first_across_collections_with_totals(
        documents: DocumentRepository, clean_redis: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document_repository, "STATUS_SLICE", 3)
    # "a" holds 6 documents (two slices exactly), "b" holds 4; doc03 and doc07 share a time.
    for number in range(6):
        await add(documents, clean_redis, number, "a", FAILED if number % 2 else COMPLETED,
                  created=100.0 + 2 * number)
    for number in range(6, 10):
        await add(documents, clean_redis, number, "b", FAILED if number % 2 else COMPLETED,
                  created=101.0 + 2 * (number - 6) if number != 7 else 106.0)

    def ids(records: list[DocumentRecord]) -> list[str]:
        return [r.document_id for r in records]

    newest = ["doc05", "doc04", "doc09", "doc07", "doc03", "doc08", "doc02", "doc01",
              "doc06", "doc00"]
    records, total = await documents.find_documents(limit=100)
    assert ids(records) == newest and total == 10
    assert await documents.list_documents(limit=3, offset=2) == records[2:5]
    page, total = await documents.find_documents(limit=4, offset=8)
    assert ids(page) == newest[8:] and total == 10
    assert await documents.find_documents(limit=4, offset=10) == ([], 10)

    failed, total = await documents.find_documents(status=FAILED, limit=100)
    assert ids(failed) == [i for i in newest if int(i[3:]) % 2] and total == 5
    page, total = await documents.find_documents(status=FAILED, limit=2, offset=1)
    assert ids(page) == ids(failed)[1:3] and total == 5
    in_a, total = await documents.find_documents("a", status=FAILED, limit=100)
    assert ids(in_a) == ["doc05", "doc03", "doc01"] and total == 3
    assert await documents.find_documents("b", status=DocumentStatus.PENDING) == ([], 0)
    assert await documents.find_documents("none") == ([], 0)

    assert await documents.document_counts() == {"a": 6, "b": 4}
    await documents.delete("doc09")
    assert await documents.document_counts() == {"a": 6, "b": 3}
    assert ids((await documents.find_documents("b", limit=1))[0]) == ["doc07"]


async def test_an_empty_registry(documents: DocumentRepository) -> None:
    assert await documents.find_documents() == ([], 0)
    assert await documents.find_documents(status=FAILED) == ([], 0)
    assert await documents.document_counts() == {}
