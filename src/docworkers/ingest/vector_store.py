"""Chroma behind :class:`~docworkers.ingest.vector_repository.VectorRepository`.

The only module that imports ``chromadb``. On top of the protocol's conventions:

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
  checked; Chroma's ``where`` syntax never leaves this module.
* Writes are serialised by a mutex; reads run concurrently with them.

The value types and helpers are re-exported here, so ``from docworkers.ingest.vector_store
import ...`` offers the whole vector-store surface.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, cast
from urllib.parse import urlsplit

import chromadb
import httpx
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT, Settings
from chromadb.errors import (
    BatchSizeExceededError,
    DuplicateIDError,
    InvalidArgumentError,
    NotFoundError,
    QuotaError,
)

from docworkers.errors import (
    ConfigurationError,
    DocworkersError,
    InputRejectedError,
    PayloadTooLargeError,
    VectorStoreError,
)
from docworkers.ingest.document import Chunk
from docworkers.ingest.search_filters import Operator, SearchFilter
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
DEFAULT_CHROMA_PORT = 8000  # what `chroma run` listens on when no port is given


# docworkers' filter operators in Chroma's language (the same spelling today, by choice).
_CHROMA_OPERATORS = {
    Operator.EQ: "$eq", Operator.NE: "$ne", Operator.GT: "$gt", Operator.GTE: "$gte",
    Operator.LT: "$lt", Operator.LTE: "$lte", Operator.IN: "$in", Operator.NIN: "$nin",
}


def _chroma_where(search_filter: SearchFilter | None) -> dict[str, Any] | None:
    """Chroma's ``where`` for a parsed filter: one condition per dict, several under
    ``$and`` (Chroma wants exactly one key per filter dict)."""
    if not search_filter:
        return None
    clauses: list[dict[str, Any]] = [
        {c.field: {_CHROMA_OPERATORS[c.operator]:
                   list(c.value) if isinstance(c.value, tuple) else c.value}}
        for c in search_filter
    ]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _document_filter(document_id: str, min_index: int = 0) -> dict[str, Any]:
    if min_index <= 0:
        return {"document_id": document_id}
    return {"$and": [{"document_id": document_id}, {"chunk_index": {"$gte": min_index}}]}


def _id_order(id_: str) -> tuple[int, str]:
    """Sort ``doc:2`` before ``doc:10``; ids not made by :func:`chunk_id` go last."""
    suffix = id_.rsplit(":", 1)[-1]
    return (int(suffix), "") if suffix.isdigit() else (2**63, id_)


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ChromaVectorRepository:
    """:class:`VectorRepository` on Chroma, embedded (``from_path``) or a server (``from_url``).

    Use the classmethods; the constructor takes an already built client. Collections are created
    on first write with cosine distance and no embedding function.
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
            client = chromadb.PersistentClient(path=str(directory), settings=_settings())
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
        host, port, ssl = _parse_chroma_url(url)
        location = f"{'https' if ssl else 'http'}://{host}:{port}"
        try:
            client = chromadb.HttpClient(
                host=host,
                port=port,
                ssl=ssl,
                headers=dict(headers or {}),
                settings=_settings(),
                tenant=tenant,
                database=database,
            )
        except Exception as exc:
            raise VectorStoreError(
                f"cannot connect to the Chroma server at {location}: {exc}. Check that it is "
                f"running (`chroma run --path <dir> --port {port}`) and reachable from here"
            ) from exc
        _set_http_timeout(client)
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
        _check_document_id(document_id)
        vectors = np.asarray(embeddings, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
            raise ValueError(
                f"embeddings for {document_id!r} must have shape ({len(chunks)}, dim), "
                f"got {vectors.shape}"
            )
        if len(metadatas) != len(chunks):
            raise ValueError(
                f"metadatas for {document_id!r} must have one entry per chunk "
                f"({len(chunks)}), got {len(metadatas)}"
            )
        if not np.isfinite(vectors).all():
            raise ValueError(f"embeddings for {document_id!r} contain NaN or infinity")
        indexes = [chunk.index for chunk in chunks]
        if sorted(indexes) != list(range(len(chunks))):
            raise ValueError(f"chunk indexes of {document_id!r} must be 0..{len(chunks) - 1}")

        ids = [chunk_id(document_id, chunk.index) for chunk in chunks]
        texts = [chunk.text for chunk in chunks]
        metas = [chunk_metadata(document_id, c, m) for c, m in zip(chunks, metadatas, strict=True)]
        with self._write_mutex, self._translate("write", collection, document_id):
            if not chunks and not self._collection_exists(collection):
                return
            target = self._collection(collection, create=True)
            assert target is not None
            dimension = vectors.shape[1]
            sizes = [_record_bytes(t, m, dimension) for t, m in zip(texts, metas, strict=True)]
            for start, end in _requests(sizes, self._max_batch_size(), MAX_REQUEST_BYTES):
                if checkpoint is not None:
                    checkpoint()
                target.upsert(
                    ids=ids[start:end],
                    embeddings=vectors[start:end],
                    documents=texts[start:end],
                    metadatas=metas[start:end],  # type: ignore[arg-type]
                )
            # Only after every new chunk is stored: drop what a longer earlier version left.
            if checkpoint is not None:
                checkpoint()
            self._delete_where(target, _document_filter(document_id, len(chunks)))

    def delete_document(self, collection: str, document_id: str) -> int:
        """Remove every chunk of ``document_id``; returns how many were removed."""
        validate_collection_name(collection)
        _check_document_id(document_id)
        with self._write_mutex, self._translate("delete from", collection, document_id):
            target = self._collection(collection, create=False)
            if target is None:
                return 0
            return self._delete_where(target, _document_filter(document_id))

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
            id_: {k: v for k, v in flatten_metadata(meta).items() if k not in STRUCTURAL_KEYS}
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

    # -- reads --------------------------------------------------------------------------------

    def count_document_chunks(self, collection: str, document_id: str) -> int:
        return len(self.document_chunk_ids(collection, document_id))

    def document_chunk_ids(self, collection: str, document_id: str) -> list[str]:
        """Ids of the stored chunks of ``document_id``, in chunk order."""
        validate_collection_name(collection)
        _check_document_id(document_id)
        with self._translate("read", collection, document_id):
            target = self._collection(collection, create=False)
            if target is None:
                return []
            ids = target.get(where=_document_filter(document_id), include=[])["ids"]
        return sorted(ids, key=_id_order)

    def document_chunks(
        self, collection: str, document_id: str
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """``(id, text, metadata)`` of every stored chunk of ``document_id``, in chunk order
        (an empty list if the collection or the document does not exist)."""
        validate_collection_name(collection)
        _check_document_id(document_id)
        with self._translate("read", collection, document_id):
            target = self._collection(collection, create=False)
            if target is None:
                return []
            found = target.get(
                where=_document_filter(document_id), include=["documents", "metadatas"]
            )
        texts = found["documents"] or [""] * len(found["ids"])
        metadatas = found["metadatas"] or [{}] * len(found["ids"])
        chunks = [
            (id_, text or "", dict(meta or {}))
            for id_, text, meta in zip(found["ids"], texts, metadatas, strict=True)
        ]
        return sorted(chunks, key=lambda chunk: _id_order(chunk[0]))

    def search(
        self,
        collection: str,
        query_embedding: np.ndarray,
        k: int = 5,
        where: SearchFilter | None = None,
    ) -> list[SearchHit]:
        """The ``k`` chunks most similar to ``query_embedding`` (an empty list if the
        collection does not exist yet), among those ``where`` matches."""
        validate_collection_name(collection)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        vector = np.asarray(query_embedding, dtype=np.float32)
        if vector.ndim == 2 and vector.shape[0] == 1:
            vector = vector[0]
        if vector.ndim != 1 or not np.isfinite(vector).all():
            raise ValueError(f"query_embedding must be one finite vector, got shape {vector.shape}")
        with self._translate("search", collection):
            target = self._collection(collection, create=False)
            if target is None:
                return []
            result = target.query(
                query_embeddings=vector[np.newaxis, :],
                n_results=k,
                where=_chroma_where(where),
                include=["documents", "metadatas", "distances"],
            )
        ids = result["ids"][0]
        documents = (result["documents"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        hits: list[SearchHit] = []
        for id_, text, meta, distance in zip(ids, documents, metadatas, distances, strict=True):
            metadata = dict(meta or {})
            filename = metadata.get("filename")
            hits.append(
                SearchHit(
                    chunk_id=id_,
                    document_id=str(metadata.get("document_id", id_.rsplit(":", 1)[0])),
                    text=text or "",
                    score=1.0 - float(distance),
                    filename=filename if isinstance(filename, str) else None,
                    page_start=_as_int(metadata.get("page_start")),
                    page_end=_as_int(metadata.get("page_end")),
                    chunk_index=_as_int(metadata.get("chunk_index")) or 0,
                    metadata=metadata,
                )
            )
        return hits

    def list_collections(self) -> list[CollectionInfo]:
        with self._translate("list collections in"):
            collections = self._client.list_collections()
            infos = [
                CollectionInfo(name=c.name, count=c.count(), metadata=dict(c.metadata or {}))
                for c in collections
            ]
        return sorted(infos, key=lambda info: info.name)

    def ping(self) -> None:
        """Raise VectorStoreError unless Chroma answers."""
        with self._translate("reach"):
            self._client.heartbeat()

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
            _close_http_session(self._client)
            if self._writer_lock is not None:
                self._writer_lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChromaVectorRepository({self._location}{', closed' if self._closed else ''})"

    # -- internals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translate(
        self, action: str, collection: str | None = None, document_id: str | None = None
    ) -> Iterator[None]:
        """Turn anything Chroma raises into a VectorStoreError that says where and what to check
        (an outage, retryable), or, for a request Chroma refuses as invalid, InputRejectedError."""
        if self._closed:
            raise VectorStoreError(f"the Chroma repository at {self._location} is closed")
        try:
            yield
        except DocworkersError:
            raise
        except InvalidArgumentError as exc:
            if collection is not None:
                self._forget(collection)
            if "dimension" in str(exc):
                # A retry cannot fix this: the embedding model changed under the collection.
                raise ConfigurationError(
                    "collection",
                    f"{collection!r} at {self._location} rejected the embeddings ({exc}); the "
                    "embedding model differs from the one that filled it: use another "
                    "collection or delete this one and re-ingest",
                ) from exc
            # Chroma refused the request itself (a value it cannot store or evaluate): the
            # same request fails again, and Chroma is up. Not a VectorStoreError, so it fails
            # the job at once and never counts toward the vector store's circuit breaker. The
            # message leaves out where Chroma runs: it may reach an API client.
            what = f"collection {collection!r}" if collection else "the database"
            raise InputRejectedError(
                f"the vector store refused to {action} {what}: {str(exc)[:300]}"
            ) from exc
        except Exception as exc:
            if collection is not None:
                self._forget(collection)  # a stale handle (collection deleted elsewhere)
            status = _refusal_status(exc)
            if status is not None:
                # A 4xx about the request (413 "Payload too large", a quota): sending it again
                # fails again, and Chroma is up, so it fails the job at once and never counts
                # toward the circuit breaker.
                what = f"collection {collection!r}" if collection else "the database"
                refused = PayloadTooLargeError if status == 413 else InputRejectedError
                raise refused(
                    f"the vector store refused to {action} {what} (HTTP {status}): "
                    f"{str(exc)[:300]}"
                ) from exc
            raise self._error(action, collection, document_id, exc) from exc

    def _error(
        self, action: str, collection: str | None, document_id: str | None, exc: Exception
    ) -> VectorStoreError:
        what = f"collection {collection!r}" if collection else "the database"
        if document_id is not None:
            what += f" (document {document_id!r})"
        return VectorStoreError(
            f"Chroma at {self._location} failed to {action} {what}: "
            f"{type(exc).__name__}: {exc}; {self._hint}"
        )

    def _collection(self, name: str, *, create: bool) -> Collection | None:
        with self._collections_mutex:
            cached = self._collections.get(name)
        if cached is not None:
            return cached
        if create:
            collection = self._client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
        else:
            try:
                collection = self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
        _check_cosine(collection, self._location)
        with self._collections_mutex:
            self._collections[name] = collection
        return collection

    def _collection_exists(self, name: str) -> bool:
        return self._collection(name, create=False) is not None

    def _forget(self, name: str) -> None:
        with self._collections_mutex:
            self._collections.pop(name, None)

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


#: About the largest write request sent to Chroma, JSON-encoded (see replace_document).
MAX_REQUEST_BYTES = 8 * 1024 * 1024
# What a Chroma server may wait for on one request before the client gives up (its own default
# is to wait forever, which would hold the write mutex forever behind a hung server).
_HTTP_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


def _record_bytes(text: str, metadata: Mapping[str, Any], dimension: int) -> int:
    """An upper bound of the JSON size of one record in an upsert request."""
    return len(json.dumps(text)) + len(json.dumps(metadata, default=str)) + 16 * dimension + 64


def _requests(sizes: Sequence[int], max_records: int, max_bytes: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` ranges of records, each at most ``max_records`` long and ``max_bytes``
    big (a single bigger record goes alone)."""
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if index > start and (index - start >= max_records or total + size > max_bytes):
            yield start, index
            start, total = index, 0
        total += size
    if start < len(sizes):
        yield start, len(sizes)


def _refusal_status(exc: BaseException) -> int | None:
    """The HTTP status if Chroma refused a request for what it held (400, 413, 422 or a Chroma
    error of that kind), else None: outages, 404s of collections deleted meanwhile, 409s and
    429s stay retryable."""
    if isinstance(exc, BatchSizeExceededError):
        return 413
    if isinstance(exc, QuotaError | DuplicateIDError):
        return 400
    seen: BaseException | None = exc
    for _ in range(5):  # the HTTP client raises a bare Exception from the httpx error
        if seen is None:
            break
        if isinstance(seen, httpx.HTTPStatusError):
            status = seen.response.status_code
            return status if status in (400, 413, 422) else None
        seen = seen.__cause__ or seen.__context__
    return None


def _settings() -> Settings:
    # The same Settings for every client: Chroma shares one System per path and refuses a
    # second client on that path with different settings.
    return Settings(anonymized_telemetry=False, allow_reset=False)


def _close_http_session(client: ClientAPI) -> None:
    """Chroma 1.5's HTTP client never closes the httpx sessions of itself and of its internal
    admin client (their sockets leak until garbage collection, with a ResourceWarning): close
    them. Best effort on private attributes; a no-op for embedded clients."""
    for owner in (client, getattr(client, "_admin_client", None)):
        session = getattr(getattr(owner, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            with contextlib.suppress(Exception):
                session.close()


def _set_http_timeout(client: ClientAPI) -> None:
    """Chroma's HTTP client waits forever for an answer: bound it (best effort, like
    :func:`_close_http_session`)."""
    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = _HTTP_TIMEOUT


def _check_document_id(document_id: str) -> None:
    if not isinstance(document_id, str) or not document_id.strip():
        raise ValueError(f"document_id must be a non-empty string, got {document_id!r}")


def _check_cosine(collection: Collection, location: str) -> None:
    """Refuse a collection someone created with another distance: our scores would be wrong."""
    config = collection.configuration_json or {}
    space = None
    for index in ("hnsw", "spann"):
        section = config.get(index)
        if isinstance(section, Mapping) and section.get("space"):
            space = section["space"]
            break
    space = space or (collection.metadata or {}).get("hnsw:space")
    if space not in (None, "cosine"):
        raise ConfigurationError(
            "collection",
            f"{collection.name!r} at {location} uses {space!r} distance but docworkers needs "
            "cosine: use another collection name",
        )


def _parse_chroma_url(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError("chroma_url", f"{url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ConfigurationError("chroma_url", f"{url!r} has no host")
    if parts.username or parts.password:  # not echoed: the message may end up in logs
        raise ConfigurationError("chroma_url", "put credentials in headers, not in the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            "chroma_url", f"{url!r}: expected http(s)://host[:port] with no path or query"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError("chroma_url", f"{url!r} has an invalid port") from exc
    ssl = parts.scheme == "https"
    return parts.hostname, port or (443 if ssl else DEFAULT_CHROMA_PORT), ssl
