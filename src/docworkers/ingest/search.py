"""Semantic search over stored chunks: embed the query, ask the vector store.

The vector store is asked through its circuit breaker (shared with the upload pipeline's
writes): while a Chroma server is down, searches fail at once with ``CircuitOpenError`` (the
API answers 503 with ``Retry-After``) instead of each waiting for a connection timeout.
Filters and arguments are checked before the model or the store is asked: a client's mistake is
a ConfigurationError naming the field, never a store failure that counts toward the breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from docworkers.errors import ConfigurationError
from docworkers.ingest.aliases import resolve_collection
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.search_filters import SearchFilter
from docworkers.ingest.vector_repository import (
    SearchHit,
    VectorRepository,
    validate_collection_name,
    vector_store_breaker,
)


class SearchService:
    """With ``documents`` given, a collection name is resolved through its alias first, so
    searches follow a ``vector_reindex`` to the collection's new physical version."""

    def __init__(self, embedder: Embedder, vectors: VectorRepository,
                 documents: DocumentRepository | None = None) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.documents = documents
        self.vector_breaker = vector_store_breaker()

    async def search(
        self, collection: str, query: str, k: int = 5,
        filters: SearchFilter | Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        """The ``k`` chunks of ``collection`` closest to ``query``, best first, among those
        ``filters`` matches (a :class:`SearchFilter`, or the JSON form it parses: a bad one is
        a ConfigurationError naming ``filters.<field>``, raised before anything is asked)."""
        validate_collection_name(collection)
        where = filters if isinstance(filters, SearchFilter) else SearchFilter.parse(filters)
        if not query.strip():
            raise ConfigurationError("query", "must not be empty")
        if not 1 <= k <= 1000:
            raise ConfigurationError("k", "must be between 1 and 1000")
        if self.documents is not None:
            collection = await resolve_collection(self.documents, collection)
        vector = (await asyncio.to_thread(self.embedder.embed, [query]))[0]
        return await asyncio.to_thread(self.vector_breaker.call_sync, self.vectors.search,
                                       collection, vector, k, where)
