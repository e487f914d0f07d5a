"""The document registry in Redis: one hash per document, one index per collection.

A document's id comes from its content (and collection), so uploading the same file again
updates the same record instead of adding one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from docworkers.errors import RepositoryConnectionError


class DocumentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(slots=True)
class DocumentRecord:
    document_id: str
    collection: str
    filename: str
    status: DocumentStatus
    job_id: str = ""
    content_hash: str = ""
    file_size: int = 0
    chunk_count: int = 0
    page_count: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    failed_stage: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, int] = field(default_factory=dict)
    enrichment_errors: list[str] = field(default_factory=list)
    file_path: str = ""  # the stored file, which vector_reindex re-reads; "" when unknown

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "collection": self.collection,
            "filename": self.filename,
            "status": self.status.value,
            "job_id": self.job_id,
            "content_hash": self.content_hash,
            "file_size": self.file_size,
            "chunk_count": self.chunk_count,
            "page_count": self.page_count,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "failed_stage": self.failed_stage,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "metadata": self.metadata,
            "timings_ms": self.timings_ms,
            "enrichment_errors": self.enrichment_errors,
        }  # not file_path: where the server keeps files is no business of API clients

    @classmethod
    def from_hash(cls, data: Mapping[str, str]) -> DocumentRecord:
        def opt_int(key: str) -> int | None:
            return int(data[key]) if data.get(key) else None

        return cls(
            document_id=data["document_id"],
            collection=data["collection"],
            filename=data.get("filename", ""),
            status=DocumentStatus(data["status"]),
            job_id=data.get("job_id", ""),
            content_hash=data.get("content_hash", ""),
            file_size=int(data.get("file_size") or 0),
            chunk_count=int(data.get("chunk_count") or 0),
            page_count=opt_int("page_count"),
            error_code=data.get("error_code") or None,
            error_message=data.get("error_message") or None,
            failed_stage=data.get("failed_stage") or None,
            created_at=float(data.get("created_at") or 0),
            updated_at=float(data.get("updated_at") or 0),
            metadata=json.loads(data.get("metadata") or "{}"),
            timings_ms=json.loads(data.get("timings_ms") or "{}"),
            enrichment_errors=json.loads(data.get("enrichment_errors") or "[]"),
            file_path=data.get("file_path", ""),
        )


def content_hash(path: Path) -> str:
    """SHA-256 of a file, read in blocks so large files never sit in memory at once."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def document_id_for(collection: str, file_hash: str) -> str:
    """Same bytes in the same collection -> same id (re-uploads replace, never duplicate)."""
    return hashlib.sha256(f"{collection}\0{file_hash}".encode()).hexdigest()[:32]


class DocumentRepository:
    """Documents known to docworkers, in Redis under the ``{documents}`` hash tag."""

    def __init__(
        self, client: aioredis.Redis, *, namespace: str = "dw", url: str = "redis"
    ) -> None:
        self.client = client
        self.url = url
        self.prefix = f"{namespace}:{{documents}}:"

    def _key(self, document_id: str) -> str:
        return f"{self.prefix}doc:{document_id}"

    @property
    def _collections(self) -> str:
        return f"{self.prefix}collections"

    def _index(self, collection: str) -> str:
        return f"{self.prefix}collection:{collection}"

    async def _run(self, pipe: Any) -> list[Any]:
        try:
            return list(await pipe.execute())
        except RedisError as exc:
            raise RepositoryConnectionError(
                f"document registry at {self.url} failed: {exc}"
            ) from exc

    async def register(self, record: DocumentRecord) -> DocumentRecord:
        """Create or refresh a document (status, job, file); keeps its first created_at.

        An empty ``file_path`` keeps the one already stored (callers that do not know it must
        not erase it).
        """
        now = time.time()
        key = self._key(record.document_id)
        fields: dict[str, str | int | float] = {
            "document_id": record.document_id,
            "collection": record.collection,
            "filename": record.filename,
            "status": record.status.value,
            "job_id": record.job_id,
            "content_hash": record.content_hash,
            "file_size": record.file_size,
            "updated_at": now,
            "error_code": "",
            "error_message": "",
            "failed_stage": "",
        }
        if record.file_path:
            fields["file_path"] = record.file_path
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(key, "created_at", str(now))
        pipe.hset(key, mapping=fields)
        pipe.zadd(self._index(record.collection), {record.document_id: now}, nx=True)
        pipe.sadd(self._collections, record.collection)
        pipe.hgetall(key)
        replies = await self._run(pipe)
        return DocumentRecord.from_hash(replies[-1])

    async def update(self, document_id: str, **fields: Any) -> None:
        """Set fields (status, chunk_count, error_*, metadata ...) on an existing document."""
        encoded: dict[str, Any] = {"updated_at": time.time()}
        for name, value in fields.items():
            if isinstance(value, DocumentStatus):
                encoded[name] = value.value
            elif isinstance(value, dict | list):
                encoded[name] = json.dumps(value)
            elif value is None:
                encoded[name] = ""
            else:
                encoded[name] = value
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self._key(document_id), mapping=encoded)
        await self._run(pipe)

    async def mark_failed(self, document_id: str, *, code: str, message: str, stage: str) -> None:
        await self.update(
            document_id,
            status=DocumentStatus.FAILED,
            error_code=code,
            error_message=message,
            failed_stage=stage,
        )

    async def get(self, document_id: str) -> DocumentRecord | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self._key(document_id))
        data = (await self._run(pipe))[0]
        return DocumentRecord.from_hash(data) if data else None

    async def list_documents(
        self, collection: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]:
        """Documents of a collection (or all collections), newest first."""
        if collection is None:
            ids: list[str] = []
            for name in await self.collections():
                ids += cast(list[str], await self.client.zrevrange(self._index(name), 0, -1))
        else:
            ids = cast(list[str], await self.client.zrevrange(self._index(collection), 0, -1))
        pipe = self.client.pipeline(transaction=False)
        for document_id in ids[offset : offset + limit]:
            pipe.hgetall(self._key(document_id))
        return [DocumentRecord.from_hash(d) for d in await self._run(pipe) if d]

    async def collections(self) -> list[str]:
        return sorted(await cast("Awaitable[set[str]]", self.client.smembers(self._collections)))

    async def delete(self, document_id: str) -> bool:
        record = await self.get(document_id)
        if record is None:
            return False
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._key(document_id))
        pipe.zrem(self._index(record.collection), document_id)
        await self._run(pipe)
        return True

    async def delete_collection(self, collection: str) -> int:
        ids = cast(list[str], await self.client.zrange(self._index(collection), 0, -1))
        pipe = self.client.pipeline(transaction=True)
        for document_id in ids:
            pipe.delete(self._key(document_id))
        pipe.delete(self._index(collection))
        pipe.srem(self._collections, collection)
        await self._run(pipe)
        return len(ids)
