"""The document registry in Redis: one hash per document, one index per collection.

A document's id comes from its content (and collection), so uploading the same file again
updates the same record instead of adding one. Every write is one script (``ingest/lua``);
a job attempt passes its fence (:mod:`docworkers.ingest.fencing`) and the write is refused with
LeaseLostError once a newer attempt of its job has claimed the fence.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis

from docworkers.ingest.fencing import FENCE_TTL, fenced
from docworkers.queue.job import iso_time
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import RegistryKeys
from docworkers.queue.redis.scripts import register as register_script

if TYPE_CHECKING:
    from docworkers.ingest.fencing import AttemptFence


# Index entries one status-filtering script reads: a few ms of Redis's time per call
# (benchmarks/document_listing.py measures it).
STATUS_SLICE = 1000


class DocumentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # its upload job was cancelled on request (not a failure)


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
    created_at: float = 0.0  # epoch seconds (as stored); to_dict writes ISO 8601
    updated_at: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, int] = field(default_factory=dict)
    enrichment_errors: list[str] = field(default_factory=list)
    file_path: str = ""  # the stored file, which vector_reindex re-reads; "" when unknown

    def to_dict(self) -> dict[str, Any]:
        """The API's and the CLI's JSON view: times in ISO 8601 UTC, like jobs'."""
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
            "created_at": iso_time(self.created_at),
            "updated_at": iso_time(self.updated_at),
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
        self.keys = RegistryKeys("documents", namespace)
        self._errors = RedisErrors("document registry", url=url)
        self._scripts = {name: register_script(client, name, "docworkers.ingest") for name in (
            "fence_claim", "document_register", "document_update", "document_delete",
            "collection_forget", "document_page", "document_status_scan")}

    async def _run(self, pipe: Any) -> list[Any]:
        with self._errors:
            return list(await pipe.execute())

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any],
                      fence: AttemptFence | None) -> Any:
        """Run a registry script, fenced by ``fence`` if one is given (see ``fenced``)."""
        keys, args = fenced(keys, args, fence)
        with self._errors:
            return await self._scripts[name](keys=keys, args=args)

    async def claim_fence(self, fence: AttemptFence) -> bool:
        """Make ``fence``'s attempt the only one whose fenced writes pass; False if a newer
        attempt of the job claimed it already."""
        with self._errors:
            claimed = await self._scripts["fence_claim"](
                keys=[fence.key], args=[fence.token, round(FENCE_TTL * 1000)])
        return bool(claimed)

    async def register(self, record: DocumentRecord, *,
                       fence: AttemptFence | None = None) -> DocumentRecord:
        """Create or refresh a document (status, job, file); keeps its first created_at.

        An empty ``file_path`` keeps the one already stored (callers that do not know it must
        not erase it). LeaseLostError if ``fence`` no longer holds.
        """
        now = time.time()
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
        k = self.keys
        reply = await self._script(
            "document_register",
            [k.record(record.document_id), k.collection(record.collection), k.collections],
            [repr(now), record.document_id, record.collection, *_pairs(fields)], fence)
        if not reply:
            assert fence is not None
            raise fence.lost(f"registering document {record.document_id}")
        return DocumentRecord.from_hash(dict(zip(reply[::2], reply[1::2], strict=True)))

    async def update(self, document_id: str, *, fence: AttemptFence | None = None,
                     **fields: Any) -> bool:
        """Set fields (status, chunk_count, error_*, metadata ...) on an existing document;
        False if it does not exist (nothing is written). LeaseLostError if ``fence`` no longer
        holds."""
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
        done = await self._script("document_update", [self.keys.record(document_id)],
                                  _pairs(encoded), fence)
        if done == 0:
            assert fence is not None
            raise fence.lost(f"updating document {document_id}")
        return bool(done == 1)

    async def mark_failed(self, document_id: str, *, code: str, message: str, stage: str,
                          fence: AttemptFence | None = None) -> bool:
        return await self.update(
            document_id,
            fence=fence,
            status=DocumentStatus.FAILED,
            error_code=code,
            error_message=message,
            failed_stage=stage,
        )

    async def get(self, document_id: str) -> DocumentRecord | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.record(document_id))
        data = (await self._run(pipe))[0]
        return DocumentRecord.from_hash(data) if data else None

    async def list_documents(
        self, collection: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]:
        """Documents of a collection (or all collections), newest first."""
        return (await self.find_documents(collection, limit=limit, offset=offset))[0]

    async def find_documents(
        self, collection: str | None = None, *, status: DocumentStatus | None = None,
        limit: int = 100, offset: int = 0,
    ) -> tuple[list[DocumentRecord], int]:
        """A page of the documents of a collection (or all collections) newest first, and how
        many match in all (for paging). There is no index by status: with ``status`` each
        index is read in slices of STATUS_SLICE entries (one short script each)."""
        names = await self.collections() if collection is None else [collection]
        k = self.keys
        indexes = [k.collection(name) for name in names]
        with self._errors:
            if status is None:
                reply = await self._scripts["document_page"](keys=indexes, args=[offset, limit])
                total, ids = int(reply[0]), [str(i) for i in reply[1:]]
            else:
                found = [match for index in indexes
                         for match in await self._in_status(index, status)]
                found.sort(key=lambda match: (match[1], match[0]), reverse=True)
                total, ids = len(found), [i for i, _ in found[offset : offset + limit]]
        pipe = self.client.pipeline(transaction=False)
        for document_id in ids:
            pipe.hgetall(k.record(document_id))
        return [DocumentRecord.from_hash(d) for d in await self._run(pipe) if d], total

    async def _in_status(self, index: str, status: DocumentStatus) -> list[tuple[str, float]]:
        """(id, creation time) of every document of one collection index in ``status``."""
        found: list[tuple[str, float]] = []
        first = 0
        while True:
            reply = await self._scripts["document_status_scan"](
                keys=[self.keys.record_prefix, index],
                args=[status.value, first, STATUS_SLICE])
            pairs = reply[1:]
            found += [(str(pairs[i]), float(pairs[i + 1])) for i in range(0, len(pairs), 2)]
            if int(reply[0]) < STATUS_SLICE:
                return found
            first += STATUS_SLICE

    async def document_counts(self) -> dict[str, int]:
        """How many documents each collection has (one round trip)."""
        names = await self.collections()
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zcard(self.keys.collection(name))
        return dict(zip(names, (int(n) for n in await self._run(pipe)), strict=True))

    async def collections(self) -> list[str]:
        with self._errors:
            names = await cast("Awaitable[set[str]]", self.client.smembers(self.keys.collections))
        return sorted(names)

    async def delete(self, document_id: str, *, fence: AttemptFence | None = None) -> bool:
        """Remove a document's entry; False if there was none. LeaseLostError if ``fence`` no
        longer holds."""
        record = await self.get(document_id)
        if record is None:
            return False
        k = self.keys
        done = await self._script(
            "document_delete", [k.record(document_id), k.collection(record.collection)],
            [document_id], fence)
        if done == 0:
            assert fence is not None
            raise fence.lost(f"deleting document {document_id}")
        return bool(done == 1)

    async def delete_collection(self, collection: str, *,
                                fence: AttemptFence | None = None) -> int:
        """Remove every entry of ``collection``; how many. LeaseLostError if ``fence`` no
        longer holds (then nothing is removed)."""
        k = self.keys
        count = int(await self._script(
            "collection_forget", [k.record_prefix, k.collection(collection), k.collections],
            [collection], fence))
        if count < 0:
            assert fence is not None
            raise fence.lost(f"deleting the documents of collection {collection}")
        return count


def _pairs(fields: Mapping[str, Any]) -> list[Any]:
    """Field, value, field, value ... for a script's ARGV."""
    return [item for pair in fields.items() for item in pair]
