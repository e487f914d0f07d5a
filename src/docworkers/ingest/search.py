"""Semantic search over stored chunks: embed the query, ask the vector store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from docworkers.errors import ConfigurationError
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.vector_repository import (
    SearchHit,
    VectorRepository,
    validate_collection_name,
)


class SearchService:
    def __init__(self, embedder: Embedder, vectors: VectorRepository) -> None:
        self.embedder = embedder
        self.vectors = vectors

    async def search(
        self, collection: str, query: str, k: int = 5, filters: Mapping[str, Any] | None = None
    ) -> list[SearchHit]:
        """The ``k`` chunks of ``collection`` closest to ``query``, best first."""
        validate_collection_name(collection)
        if not query.strip():
            raise ConfigurationError("query", "must not be empty")
        if not 1 <= k <= 1000:
            raise ConfigurationError("k", "must be between 1 and 1000")
        vector = (await asyncio.to_thread(self.embedder.embed, [query]))[0]
        return await asyncio.to_thread(self.vectors.search, collection, vector, k, filters)
