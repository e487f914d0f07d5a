"""Chroma behind :class:`~docworkers.ingest.vector_repository.VectorRepository`.

With its helpers ``chroma_reads`` (the reads), ``chroma_queries`` (filters and results),
``chroma_writes`` (checks and request sizes), ``chroma_errors`` and ``chroma_client``, the only
modules that import ``chromadb``. On top of the protocol's conventions:

* Embeddings are always passed in and collections are created with ``embedding_function=None``
  and cosine distance, so Chroma never downloads a model; telemetry is off. A collection that
  already exists with another distance is refused (the scores would be meaningless).
* Writes go in batches of at most ``client.get_max_batch_size()`` records.
* Embedded Chroma (:meth:`ChromaVectorRepository.from_path`) allows one writer *process* per
  directory, enforced by :class:`~docworkers.ingest.writer_lock.WriterLock`. Opening the same
  directory again *in the same process* shares that lock (and Chroma shares its client state per
  path), so it is allowed; repositories on one path also share a write mutex.
* Any Chroma or connection failure becomes a retryable VectorStoreError that names the path or
  URL and what to check. An embedding dimension that does not match the collection is a
  ConfigurationError instead, and a request Chroma refuses as invalid an InputRejectedError
  (refused as too large, HTTP 413: PayloadTooLargeError): retrying cannot fix them, and none
  counts toward the circuit breaker.
* Writes go in requests bounded in records and in bytes (:data:`MAX_REQUEST_BYTES`), with a
  checkpoint (a deadline) before each; the HTTP client waits at most 300 s for an answer.
* Search filters arrive as :class:`~docworkers.ingest.search_filters.SearchFilter`, already
  checked; Chroma's ``where`` syntax never leaves these modules.
* Writes are serialised by a mutex; reads run concurrently with them.

The value types and helpers are re-exported here, so ``from docworkers.ingest.vector_store
import ...`` offers the whole vector-store surface.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, cast

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT
from chromadb.errors import NotFoundError

from docworkers.errors import VectorStoreError
from docworkers.ingest.chroma_client import (
    chroma_settings,
    close_http_session,
    parse_chroma_url,
    set_http_timeout,
)
from docworkers.ingest.chroma_queries import TEXT_KEY, document_filter
from docworkers.ingest.chroma_reads import ChromaReads
from docworkers.ingest.chroma_writes import (
    check_document_id,
    checked_vectors,
    record_bytes,
    request_ranges,
)
from docworkers.ingest.document import Chunk
from docworkers.ingest.vector_repository import (
    STRUCTURAL_KEYS,
    CollectionInfo,
    SearchHit,
    VectorRepository,
    chunk_id,
    chunk_metadata,
    flatten_metadata,
    validate_collection_name,
)
from docworkers.ingest.writer_lock import WriterLock

__all__ = [
    "DEFAULT_CHROMA_PATH",
    "ChromaVectorRepository",
    "CollectionInfo",
    "SearchHit",
    "VectorRepository",
    "chunk_id",
    "flatten_metadata",
    "validate_collection_name",
]

DEFAULT_CHROMA_PATH = ".docworkers/chroma"
#: About the largest write request sent to Chroma, JSON-encoded (see replace_document; read from
#: this module at each write, so it can be changed here).
MAX_REQUEST_BYTES = 8 * 1024 * 1024


class ChromaVectorRepository(ChromaReads):
    """:class:`VectorRepository` on Chroma, embedded (``from_path``) or a server (``from_url``).

    Use the classmethods; the constructor takes an already built client. Collections are created
    on first write with cosine distance and no embedding function. The reads, the collection
    handles and the error translation are in :class:`ChromaReads`.
    """

    def __init__(
        self,
        client: ClientAPI,
        *,
        location: str,
        hint: str,
        writer_lock: WriterLock | None = None,
    ) -> None:
        self._client = client
        self._location = location  # "path /x/y" or "http://host:port", for error messages
        self._hint = hint  # what to check when Chroma fails
        self._writer_lock = writer_lock
        # Repositories sharing a path share the write mutex of its lock.
        self._write_mutex = writer_lock.write_mutex if writer_lock else threading.RLock()
        self._collections: dict[str, Collection] = {}
        self._collections_mutex = threading.Lock()
        self._batch_size: int | None = None
        self._closed = False

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_path(cls, path: str | Path = DEFAULT_CHROMA_PATH) -> Self:
        """Open (creating if needed) an embedded Chroma database in the directory ``path``.

        Takes the single-writer lock on ``path`` for the repository's lifetime: a second
        *process* gets a ConfigurationError; a second repository in this process shares the lock.
        """
        directory = Path(path).expanduser().resolve()
        lock = WriterLock.acquire(directory)
        try:
            client = chromadb.PersistentClient(path=str(directory), settings=chroma_settings())
        except Exception as exc:
            lock.release()
            raise VectorStoreError(
                f"cannot open the Chroma database at {directory}: {exc}. Check that the "
                "directory is writable, the disk is not full and the files are not corrupt"
            ) from exc
        return cls(
            client,
            location=f"path {directory}",
            hint="check that the directory is writable and the disk is not full",
            writer_lock=lock,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
    ) -> Self:
        """Connect to a Chroma server (``chroma run``) at ``http(s)://host[:port]``.

        A missing port means 8000 for http (Chroma's default) and 443 for https.
        """
        host, port, ssl = parse_chroma_url(url)
        location = f"{'https' if ssl else 'http'}://{host}:{port}"
        try:
            client = chromadb.HttpClient(
                host=host,
                port=port,
                ssl=ssl,
                headers=dict(headers or {}),
                settings=chroma_settings(),
                tenant=tenant,
                database=database,
            )
        except Exception as exc:
            raise VectorStoreError(
                f"cannot connect to the Chroma server at {location}: {exc}. Check that it is "
                f"running (`chroma run --path <dir> --port {port}`) and reachable from here"
            ) from exc
        set_http_timeout(client)
        return cls(
            client,
            location=location,
            hint="check that the Chroma server is running and reachable",
        )

    # -- writes -------------------------------------------------------------------------------

    def replace_document(
        self,
        collection: str,
        document_id: str,
        chunks: Sequence[Chunk],
        embeddings: np.ndarray,
        metadatas: Sequence[Mapping[str, Any]],
        *,
        checkpoint: Callable[[], None] | None = None,
    ) -> None:
        """Make ``chunks`` the complete content of ``document_id`` in ``collection``.

        Written in requests of at most ``get_max_batch_size()`` records and about
        :data:`MAX_REQUEST_BYTES` (a Chroma server refuses bodies above its
        ``max_payload_size_bytes``, 40 MB by default, as "Payload too large", and a bounded
        request is a bounded wait); ``checkpoint`` is called before each.
        """
        validate_collection_name(collection)
        check_document_id(document_id)
        vectors = checked_vectors(document_id, chunks, embeddings, metadatas)

        ids = [chunk_id(document_id, chunk.index) for chunk in chunks]
        texts = [chunk.text for chunk in chunks]
        metas = [chunk_metadata(document_id, c, m) for c, m in zip(chunks, metadatas, strict=True)]
        with self._write_mutex, self._translate("write", collection, document_id):
            if not chunks and not self._collection_exists(collection):
                return
            target = self._collection(collection, create=True)
            assert target is not None
            dimension = vectors.shape[1]
            sizes = [record_bytes(t, m, dimension) for t, m in zip(texts, metas, strict=True)]
            for start, end in request_ranges(sizes, self._max_batch_size(), MAX_REQUEST_BYTES):
                if checkpoint is not None:
                    checkpoint()
                target.upsert(  # the text in the metadata, not as a document: chroma_queries.py
                    ids=ids[start:end],
                    embeddings=vectors[start:end],
                    metadatas=[
                        {**meta, TEXT_KEY: text}
                        for meta, text in zip(metas[start:end], texts[start:end], strict=True)
                    ],
                )
            # Only after every new chunk is stored: drop what a longer earlier version left.
            if checkpoint is not None:
                checkpoint()
            self._delete_where(target, document_filter(document_id, len(chunks)))

    def delete_document(self, collection: str, document_id: str) -> int:
        """Remove every chunk of ``document_id``; returns how many were removed."""
        validate_collection_name(collection)
        check_document_id(document_id)
        with self._write_mutex, self._translate("delete from", collection, document_id):
            target = self._collection(collection, create=False)
            if target is None:
                return 0
            return self._delete_where(target, document_filter(document_id))

    def update_chunk_metadata(
        self,
        collection: str,
        ids: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> int:
        """Merge ``metadatas`` into the stored metadata of the chunks ``ids`` (no re-embedding).

        Values are flattened like on write; structural keys (document id, chunk index, offsets,
        pages) are never changed. Ids that are not stored are skipped; returns how many chunks
        were updated.
        """
        validate_collection_name(collection)
        if len(ids) != len(metadatas):
            raise ValueError(
                f"update_chunk_metadata needs one metadata per id, got {len(ids)} ids and "
                f"{len(metadatas)} metadatas"
            )
        updates = {
            id_: {k: v for k, v in flatten_metadata(meta).items()
                  if k not in STRUCTURAL_KEYS and k != TEXT_KEY}
            for id_, meta in zip(ids, metadatas, strict=True)
        }
        with self._write_mutex, self._translate("update metadata in", collection):
            target = self._collection(collection, create=False)
            if target is None or not updates:
                return 0
            batch = self._max_batch_size()
            wanted = list(updates)
            updated = 0
            for start in range(0, len(wanted), batch):
                found = target.get(ids=wanted[start : start + batch], include=["metadatas"])
                stored = found["metadatas"] or []
                merged = [
                    {**dict(meta or {}), **updates[id_]}
                    for id_, meta in zip(found["ids"], stored, strict=True)
                ]
                if found["ids"]:
                    target.update(ids=found["ids"], metadatas=merged)  # type: ignore[arg-type]
                updated += len(found["ids"])
            return updated

    def delete_collection(self, name: str) -> bool:
        """Drop a whole collection; False if it did not exist."""
        validate_collection_name(name)
        with self._write_mutex, self._translate("delete", name):
            self._forget(name)
            try:
                self._client.delete_collection(name)
            except NotFoundError:
                return False
            return True

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the client and the writer lock; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with self._collections_mutex:
            self._collections.clear()
        try:
            close = getattr(self._client, "close", None)
            if close is not None:
                close()
        finally:
            close_http_session(self._client)
            if self._writer_lock is not None:
                self._writer_lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChromaVectorRepository({self._location}{', closed' if self._closed else ''})"

    # -- internals ----------------------------------------------------------------------------

    def _max_batch_size(self) -> int:
        if self._batch_size is None:
            self._batch_size = max(1, int(self._client.get_max_batch_size()))
        return self._batch_size

    def _delete_where(self, collection: Collection, where: dict[str, Any]) -> int:
        ids = collection.get(where=cast(Any, where), include=[])["ids"]
        batch = self._max_batch_size()
        for start in range(0, len(ids), batch):
            collection.delete(ids=ids[start : start + batch])
        return len(ids)


