"""Chroma's query language, both ways: docworkers' search filters as Chroma ``where`` clauses,
and query results as :class:`~docworkers.ingest.vector_repository.SearchHit`s in chunk order.
Chroma's ``where`` syntax never leaves the Chroma modules.

A chunk's text is stored in its metadata, under :data:`TEXT_KEY`, not as Chroma's document:
Chroma indexes every document in a full-text table (SQLite FTS5, trigrams) as it is written, an
index docworkers never queries (its keyword search is its own BM25 index in Redis). Storing the
2,548 chunks of ``benchmarks/ingest_throughput`` in an embedded Chroma took 2.8-3.1 CPU s with
the texts as documents and 1.4 with them in the metadata (2026-12-07), CPU taken from the cores
the model needs. Reads take the text back out of the metadata (:func:`stored_chunk`), and read
the document of a chunk written before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chromadb.api.types import GetResult, QueryResult

from docworkers.ingest.search_filters import Operator, SearchFilter
from docworkers.ingest.vector_repository import SearchHit

#: The metadata key that holds a chunk's text in Chroma (see the module docstring).
TEXT_KEY = "chunk_text"

# docworkers' filter operators in Chroma's language (the same spelling today, by choice).
CHROMA_OPERATORS = {
    Operator.EQ: "$eq", Operator.NE: "$ne", Operator.GT: "$gt", Operator.GTE: "$gte",
    Operator.LT: "$lt", Operator.LTE: "$lte", Operator.IN: "$in", Operator.NIN: "$nin",
}


def chroma_where(search_filter: SearchFilter | None) -> dict[str, Any] | None:
    """Chroma's ``where`` for a parsed filter: one condition per dict, several under
    ``$and`` (Chroma wants exactly one key per filter dict)."""
    if not search_filter:
        return None
    clauses: list[dict[str, Any]] = [
        {c.field: {CHROMA_OPERATORS[c.operator]:
                   list(c.value) if isinstance(c.value, tuple) else c.value}}
        for c in search_filter
    ]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def document_filter(document_id: str, min_index: int = 0) -> dict[str, Any]:
    if min_index <= 0:
        return {"document_id": document_id}
    return {"$and": [{"document_id": document_id}, {"chunk_index": {"$gte": min_index}}]}


def id_order(id_: str) -> tuple[int, str]:
    """Sort ``doc:2`` before ``doc:10``; ids not made by :func:`chunk_id` go last."""
    suffix = id_.rsplit(":", 1)[-1]
    return (int(suffix), "") if suffix.isdigit() else (2**63, id_)


def stored_chunk(document: str | None, metadata: Mapping[str, Any] | None
                 ) -> tuple[str, dict[str, Any]]:
    """A stored chunk's text and its metadata without :data:`TEXT_KEY`; the text of a chunk
    written before the text moved to the metadata is its Chroma document."""
    meta = dict(metadata or {})
    text = meta.pop(TEXT_KEY, None)
    return (text if isinstance(text, str) else document or ""), meta


def stored_chunks(found: GetResult) -> list[tuple[str, str, dict[str, Any]]]:
    """``(id, text, metadata)`` of each chunk of a Chroma ``get`` that included documents and
    metadatas, in Chroma's order (see :func:`stored_chunk`)."""
    ids = found["ids"]
    texts = found["documents"] or [""] * len(ids)
    metadatas = found["metadatas"] or [{}] * len(ids)
    return [(id_, *stored_chunk(text, meta))
            for id_, text, meta in zip(ids, texts, metadatas, strict=True)]


def search_hits(result: QueryResult) -> list[SearchHit]:
    """The hits of a one-query Chroma ``query`` result, in Chroma's order (most similar first);
    the score is ``1 - cosine distance``."""
    ids = result["ids"][0]
    documents = (result["documents"] or [[]])[0]
    metadatas = (result["metadatas"] or [[]])[0]
    distances = (result["distances"] or [[]])[0]
    return [SearchHit.stored(id_, *stored_chunk(text, meta), 1.0 - float(distance))
            for id_, text, meta, distance in zip(ids, documents, metadatas, distances,
                                                  strict=True)]
