"""How long the documents view's reads take on a large document registry.

Run from the repository root:

    .venv/bin/python benchmarks/document_listing.py [--redis-url redis://127.0.0.1:6379/14]
        [--documents 10000] [--collections 10]

Registers ``--documents`` documents (namespace ``bench-docs``, deleted at the end; FLUSHDB is
never called) spread over ``--collections`` collections, a tenth of them failed. Then times
what the dashboard asks every two seconds: one page of all documents (newest first across
collections), one page filtered by status (no status index: every status is read), one
collection's page filtered by status, the document counts of every collection, and one
slice of ``STATUS_SLICE`` index entries walked for a status (one script call: how long Redis
is busy at a time). Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from _redis import delete_namespace

from docworkers.ingest.document_repository import (
    STATUS_SLICE,
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
)

NAMESPACE = "bench-docs"


async def fill(documents: DocumentRepository, count: int, collections: int) -> None:
    for start in range(0, count, 500):
        await asyncio.gather(*(documents.register(DocumentRecord(
            document_id=f"doc{n:06d}", collection=f"shelf-{n % collections:02d}",
            filename=f"report-{n:06d}.pdf",
            status=DocumentStatus.FAILED if n % 10 == 0 else DocumentStatus.COMPLETED,
            file_size=100_000)) for n in range(start, min(count, start + 500))))


async def timed(label: str, action: Callable[[], Awaitable[Any]], runs: int = 5
                ) -> tuple[str, float, Any]:
    """The median of ``runs`` timings, and the last result."""
    seconds = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = await action()
        seconds.append(time.perf_counter() - start)
    return label, sorted(seconds)[runs // 2], result


async def main(url: str, count: int, collections: int) -> None:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    documents = DocumentRepository(client, namespace=NAMESPACE, url=url)
    failed = DocumentStatus.FAILED
    scan = documents._scripts["document_status_scan"]  # one call, as find_documents makes
    try:
        await fill(documents, count, collections)
        rows = [
            await timed("page of all documents", lambda: documents.find_documents(limit=25)),
            await timed("page, status=failed", lambda: documents.find_documents(
                status=failed, limit=25)),
            await timed("one collection, status=failed", lambda: documents.find_documents(
                "shelf-00", status=failed, limit=25)),
            await timed("document counts", documents.document_counts),
            await timed(f"one status slice ({STATUS_SLICE})", lambda: scan(
                keys=[documents.keys.record_prefix, documents.keys.collection("shelf-00")],
                args=["failed", 0, STATUS_SLICE])),
        ]
    finally:
        delete_namespace(url, NAMESPACE)
        await client.aclose()
    print(f"{count} documents in {collections} collections, a tenth failed ({url})")
    print(f"{'read':<32} {'seconds':>8}  result")
    for label, seconds, result in rows:
        shown = (f"{len(result[0])} shown of {result[1]}" if isinstance(result, tuple)
                 else f"{len(result)} collections" if isinstance(result, dict)
                 else f"{result[0]} read, {len(result) // 2} kept")
        print(f"{label:<32} {seconds:>8.4f}  {shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--collections", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.redis_url, args.documents, args.collections))
