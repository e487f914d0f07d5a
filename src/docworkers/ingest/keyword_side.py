"""How the keyword index (:mod:`docworkers.ingest.lexical`) follows the vector store.

Every job that changes chunks changes both sides, in an order that a crash cannot turn into a
leak: chunks are written to the vector store first and the keyword index second; documents and
collections are removed from the keyword index first and the vector store second. So the keyword
index never holds a collection the vector store lacks, and every clean-up that lists the vector
store's collections (``collection_delete``, ``vector_reindex``) reaches the keyword side too. A
job killed between the two writes is rerun (at least once) and both writes are idempotent, so
the rerun leaves both sides describing the same chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from docworkers.ingest.document import Chunk
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.lexical.index import LexicalChunk
from docworkers.ingest.vector_repository import chunk_id

__all__ = ["KeywordWrites", "keyword_chunks"]


class KeywordWrites(Protocol):
    """What the upload pipeline writes to the keyword index (a LexicalIndex, or a view)."""

    async def replace_document(self, collection: str, document_id: str,
                               chunks: Sequence[LexicalChunk], *,
                               fence: AttemptFence | None = None) -> None: ...

    async def remove_document(self, collection: str, document_id: str, *,
                              fence: AttemptFence | None = None) -> int: ...


def keyword_chunks(document_id: str, chunks: Sequence[Chunk]) -> list[LexicalChunk]:
    """The keyword side of a document's chunks: the same ids and texts as in the vector store."""
    return [LexicalChunk(chunk_id=chunk_id(document_id, chunk.index), document_id=document_id,
                         text=chunk.text) for chunk in chunks]

