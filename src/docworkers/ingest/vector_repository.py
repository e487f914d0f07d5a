"""The vector store seen from the pipeline: :class:`VectorRepository` and its value types.

Nothing here imports a vector database. :mod:`docworkers.ingest.vector_store` implements the
protocol on Chroma; another database needs one more class like it and nothing else.

Conventions every implementation follows:

* Chunk ids are ``chunk_id(document_id, chunk_index)``, so re-ingesting a document (a retry, a
  re-upload) overwrites its chunks instead of duplicating them.
* ``replace_document`` stores the new chunks first and then deletes the chunks an earlier,
  longer version left behind: a crash in between leaves a superset, never a hole.
* Chunk metadata is flat (see :func:`flatten_metadata`) and always carries ``document_id``,
  ``chunk_index``, ``start_char``, ``end_char``, ``token_count`` and, when known,
  ``page_start``/``page_end``; a chunk whose text came from OCR also ``ocr`` (True) and
  ``ocr_confidence`` (0-100; absent: every page was read from its text layer).
* ``update_chunk_metadata`` merges keys into the stored metadata of existing chunks; it never
  touches texts, embeddings or the structural keys (:data:`STRUCTURAL_KEYS`).
* Methods are synchronous; async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from docworkers.errors import ConfigurationError
from docworkers.ingest.document import Chunk
from docworkers.ingest.search_filters import SearchFilter
from docworkers.workers.circuit_breaker import CircuitBreaker, get_breaker

__all__ = [
    "STRUCTURAL_KEYS",
    "VECTOR_STORE_BREAKER",
    "CollectionInfo",
    "MetadataValue",
    "SearchHit",
    "VectorRepository",
    "chunk_id",
    "chunk_metadata",
    "flatten_metadata",
    "validate_collection_name",
    "vector_store_breaker",
]

MetadataValue = str | int | float | bool

VECTOR_STORE_BREAKER = "vector-store"


def vector_store_breaker() -> CircuitBreaker:
    """The process-wide circuit breaker of the vector store, shared by writes (the upload
    pipeline) and searches: after 5 consecutive failures calls fail fast for 10 s, then one
    probe call decides."""
    return get_breaker(VECTOR_STORE_BREAKER, failure_threshold=5, reset_timeout=10.0)

_COLLECTION_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One chunk returned by a search, best first."""

    chunk_id: str
    document_id: str
    text: str
    score: float  # cosine similarity in [-1, 1]; higher is better
    filename: str | None
    page_start: int | None
    page_end: int | None
    chunk_index: int
    metadata: dict[str, Any]  # everything stored on the chunk, structural keys included
    # Which side(s) of a search found the chunk ("dense": embeddings, "keyword": BM25) and its
    # 1-based rank in each side's candidates (None: not among them). Set by SearchService.
    found_by: tuple[str, ...] = ()
    dense_rank: int | None = None
    keyword_rank: int | None = None
    ocr: bool = False  # its text came from OCR of a page's image
    ocr_confidence: float | None = None  # OCR's mean word confidence on that page, 0-100

    @classmethod
    def stored(cls, chunk_id: str, text: str, metadata: Mapping[str, Any],
               score: float) -> SearchHit:
        """The hit of a stored chunk: its fields read from the metadata every chunk carries."""
        meta = dict(metadata)
        filename = meta.get("filename")
        return cls(
            chunk_id=chunk_id,
            document_id=str(meta.get("document_id", chunk_id.rsplit(":", 1)[0])),
            text=text,
            score=score,
            filename=filename if isinstance(filename, str) else None,
            page_start=_as_int(meta.get("page_start")),
            page_end=_as_int(meta.get("page_end")),
            chunk_index=_as_int(meta.get("chunk_index")) or 0,
            metadata=meta,
            ocr=meta.get("ocr") is True,
            ocr_confidence=_as_float(meta.get("ocr_confidence")),
        )


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    count: int  # number of chunks
    metadata: dict[str, Any]


class VectorRepository(Protocol):
    """A store of chunk embeddings grouped by document inside named collections."""

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
        """Store ``chunks`` as the whole of ``document_id`` in bounded requests, calling
        ``checkpoint`` (a deadline: it raises to stop) before each."""
        ...

    def delete_document(self, collection: str, document_id: str) -> int: ...

    def count_document_chunks(self, collection: str, document_id: str) -> int: ...

    def document_chunk_ids(self, collection: str, document_id: str) -> list[str]: ...

    def document_chunks(
        self, collection: str, document_id: str
    ) -> list[tuple[str, str, dict[str, Any]]]: ...

    def update_chunk_metadata(
        self,
        collection: str,
        ids: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> int: ...

    def chunks_by_ids(
        self, collection: str, ids: Sequence[str], where: SearchFilter | None = None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """``(id, text, metadata)`` of the stored chunks among ``ids`` that ``where`` matches,
        in the order of ``ids``; ids not stored (or filtered out) are left out."""
        ...

    def similarities(self, collection: str, ids: Sequence[str], query_embedding: np.ndarray,
                     where: SearchFilter | None = None) -> dict[str, float]:
        """Cosine similarity of ``query_embedding`` to each stored chunk among ``ids`` that
        ``where`` matches (the others are left out)."""
        ...

    def nearest(self, collection: str, query_embedding: np.ndarray, k: int,
                where: SearchFilter | None = None) -> list[tuple[str, float]]:
        """:meth:`search` without the texts and metadata: the ``k`` nearest chunks' ids and
        cosine similarities, best first. Hybrid search reads the texts of its final hits only,
        not of every candidate (at 100,000 chunks the texts cost more than the search)."""
        ...

    def search(
        self,
        collection: str,
        query_embedding: np.ndarray,
        k: int = 5,
        where: SearchFilter | None = None,
    ) -> list[SearchHit]: ...

    def list_collections(self) -> list[CollectionInfo]: ...

    def delete_collection(self, name: str) -> bool: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def validate_collection_name(name: str) -> str:
    """Return ``name`` if Chroma accepts it as a collection name, else raise ConfigurationError.

    Chroma's rules: 3-512 characters from ``[a-zA-Z0-9._-]``, starting and ending with a letter
    or digit, no ``..``, and not an IPv4 address.
    """
    if not isinstance(name, str):
        raise ConfigurationError("collection", f"must be a string, got {type(name).__name__}")
    if not _COLLECTION_NAME.match(name):
        raise ConfigurationError(
            "collection",
            f"{name[:80]!r} is not a valid name: use 3-512 characters from letters, digits, "
            "'.', '_' and '-', starting and ending with a letter or digit",
        )
    if ".." in name:
        raise ConfigurationError("collection", f"{name!r} must not contain '..'")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return name
    raise ConfigurationError("collection", f"{name!r} must not be an IPv4 address")


def chunk_id(document_id: str, chunk_index: int) -> str:
    """The deterministic id of a chunk: re-ingesting a document overwrites, never duplicates."""
    return f"{document_id}:{chunk_index}"


def flatten_metadata(metadata: Mapping[str, Any]) -> dict[str, MetadataValue]:
    """Turn caller metadata into the scalar values Chroma stores.

    ``None`` and non-finite floats are dropped (Chroma rejects them), lists and tuples become
    comma-joined strings, dicts JSON; numpy scalars become Python scalars, anything else its
    ``str``.
    """
    flat: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            continue  # Chroma cannot store NaN or infinity
        if isinstance(value, bool | int | float | str):
            flat[str(key)] = value
        elif isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
            flat[str(key)] = ",".join(str(item) for item in items if item is not None)
        elif isinstance(value, Mapping):
            flat[str(key)] = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
        else:
            flat[str(key)] = str(value)
    return flat


STRUCTURAL_KEYS = frozenset(
    {
        "document_id",
        "chunk_index",
        "start_char",
        "end_char",
        "token_count",
        "page_start",
        "page_end",
        "ocr",
        "ocr_confidence",
    }
)


def chunk_metadata(
    document_id: str, chunk: Chunk, extra: Mapping[str, Any]
) -> dict[str, MetadataValue]:
    """The stored metadata of one chunk: ``extra`` flattened, then the structural keys (which
    ``extra`` cannot override); page numbers are omitted when unknown, the OCR fields for
    text that did not come from OCR."""
    metadata = flatten_metadata(extra)
    metadata.update(
        document_id=document_id,
        chunk_index=chunk.index,
        start_char=chunk.start_char,
        end_char=chunk.end_char,
        token_count=chunk.token_count,
    )
    for key in ("page_start", "page_end", "ocr", "ocr_confidence"):
        metadata.pop(key, None)
        value = getattr(chunk, key)
        if value is not None and value is not False:
            metadata[key] = value
    return metadata
