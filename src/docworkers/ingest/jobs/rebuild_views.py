"""What the upload pipeline sees while ``vector_reindex`` rebuilds one document: a registry that
holds its writes back, and a vector repository and a keyword index that send the live
collection's reads and writes to the version being built. Used by
:mod:`docworkers.ingest.jobs.vector_reindex`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from docworkers.ingest.document import Chunk
from docworkers.ingest.document_repository import DocumentRecord, DocumentRepository
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.keyword_side import KeywordWrites
from docworkers.ingest.lexical.index import LexicalChunk
from docworkers.ingest.search_filters import SearchFilter
from docworkers.ingest.vector_repository import CollectionInfo, SearchHit, VectorRepository

__all__ = ["HeldBackRegistry", "RedirectedKeywords", "RedirectedVectors"]


class HeldBackRegistry(DocumentRepository):
    """The registry as the pipeline sees it during a rebuild: reads are real, writes are kept
    here, so the registry goes on describing the collection that searches use."""

    def __init__(self, real: DocumentRepository) -> None:
        super().__init__(real.client, url=real.url)
        self.keys = real.keys
        self.fields: dict[str, Any] = {}

    async def register(self, record: DocumentRecord, *,
                       fence: AttemptFence | None = None) -> DocumentRecord:
        return record

    async def update(self, document_id: str, *, fence: AttemptFence | None = None,
                     **fields: Any) -> bool:
        self.fields.update(fields)
        return True


class RedirectedVectors:
    """A VectorRepository whose reads and writes of ``sources`` go to ``target`` instead."""

    def __init__(self, inner: VectorRepository, sources: set[str], target: str) -> None:
        self.inner = inner
        self.sources = frozenset(sources)
        self.target = target

    def _to(self, collection: str) -> str:
        return self.target if collection in self.sources else collection

    def replace_document(self, collection: str, document_id: str, chunks: Sequence[Chunk],
                         embeddings: np.ndarray, metadatas: Sequence[Mapping[str, Any]], *,
                         checkpoint: Callable[[], None] | None = None) -> None:
        self.inner.replace_document(self._to(collection), document_id, chunks, embeddings,
                                    metadatas, checkpoint=checkpoint)

    def delete_document(self, collection: str, document_id: str) -> int:
        return self.inner.delete_document(self._to(collection), document_id)

    def count_document_chunks(self, collection: str, document_id: str) -> int:
        return self.inner.count_document_chunks(self._to(collection), document_id)

    def document_chunk_ids(self, collection: str, document_id: str) -> list[str]:
        return self.inner.document_chunk_ids(self._to(collection), document_id)

    def document_chunks(self, collection: str, document_id: str
                        ) -> list[tuple[str, str, dict[str, Any]]]:
        return self.inner.document_chunks(self._to(collection), document_id)

    def update_chunk_metadata(self, collection: str, ids: Sequence[str],
                              metadatas: Sequence[Mapping[str, Any]]) -> int:
        return self.inner.update_chunk_metadata(self._to(collection), ids, metadatas)

    def chunks_by_ids(self, collection: str, ids: Sequence[str],
                      where: SearchFilter | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        return self.inner.chunks_by_ids(self._to(collection), ids, where)

    def similarities(self, collection: str, ids: Sequence[str], query_embedding: np.ndarray,
                     where: SearchFilter | None = None) -> dict[str, float]:
        return self.inner.similarities(self._to(collection), ids, query_embedding, where)

    def nearest(self, collection: str, query_embedding: np.ndarray, k: int,
                where: SearchFilter | None = None) -> list[tuple[str, float]]:
        return self.inner.nearest(self._to(collection), query_embedding, k, where)

    def search(self, collection: str, query_embedding: np.ndarray, k: int = 5,
               where: SearchFilter | None = None) -> list[SearchHit]:
        return self.inner.search(self._to(collection), query_embedding, k, where)

    def list_collections(self) -> list[CollectionInfo]:
        return self.inner.list_collections()

    def delete_collection(self, name: str) -> bool:
        return self.inner.delete_collection(self._to(name))

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        """The wrapped repository belongs to the worker: nothing to close here."""


class RedirectedKeywords:
    """Keyword index writes of ``sources`` sent to ``target`` instead, as RedirectedVectors."""

    def __init__(self, inner: KeywordWrites, sources: set[str], target: str) -> None:
        self.inner = inner
        self.sources = frozenset(sources)
        self.target = target

    def _to(self, collection: str) -> str:
        return self.target if collection in self.sources else collection

    async def replace_document(self, collection: str, document_id: str,
                               chunks: Sequence[LexicalChunk], *,
                               fence: AttemptFence | None = None) -> None:
        await self.inner.replace_document(self._to(collection), document_id, chunks,
                                          fence=fence)

    async def remove_document(self, collection: str, document_id: str, *,
                              fence: AttemptFence | None = None) -> int:
        return await self.inner.remove_document(self._to(collection), document_id, fence=fence)
