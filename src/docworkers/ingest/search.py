"""Search over stored chunks: by meaning (dense), by keywords (BM25), or both fused (hybrid).

* dense: embed the query, ask the vector store for the nearest chunks.
* keyword: ask the collection's keyword index (:mod:`docworkers.ingest.lexical`) for the best
  BM25 matches, then read their text and metadata from the vector store by id, with the
  filters as its ``where`` clause: the filter language is the vector store's, so it applies to
  both sides alike.
* hybrid (the default): both sides' best ``max(k, SEARCH_CANDIDATES)`` are the candidates.
  Their reciprocal rank fusion (:mod:`docworkers.ingest.fusion`) picks the best
  ``FEEDBACK_CHUNKS``, whose most frequent terms expand the keyword query (RM3,
  :mod:`docworkers.ingest.lexical.feedback`). Then every candidate is scored on both sides:
  its cosine similarity (the vector store's ``similarities`` for the keyword side's) and its
  BM25 for the expanded query (:meth:`LexicalIndex.score`: a bounded rescoring of the
  candidates, not a second search of the index, whose cost grows with the added terms'
  postings), and they are ranked by ``HYBRID_DENSE_WEIGHT`` x z(cosine) + (1 - it) x z(BM25)
  (README, Performance: on Cranfield this beats RRF of the two sides; weights, min-max
  fusion and per-document fusion alone did not). A chunk only one side found can still win.
  When the query names something exactly (an identifier with a digit such as ``CPTY-8F3K2``,
  a word in capitals such as a ticker: :func:`~docworkers.ingest.lexical.tokens.exact_terms`),
  the fused chunks that contain one of those terms come first, in fused order: fusion alone
  lets prose that both sides half-like beat the one chunk that holds the policy number.

With ``group_by_document`` a search returns documents rather than chunks: each document once,
by its best chunk (MaxP; the others are dropped), ``k`` documents when there are that many.
This is how passage search is judged against document relevance (Recall@100 on Cranfield
counts 100 documents); the search is widened (3x ``k`` a round, up to MAX_K) until ``k``
documents are found or there are no more.

Every hit says which side(s) found it (``found_by``: whose candidates it was among) and its
rank on each (``dense_rank``, ``keyword_rank``, 1-based among that side's candidates after
filtering); ``score`` is the mode's score.

The vector store is asked through its circuit breaker (shared with the upload pipeline's
writes): while a Chroma server is down, searches fail at once with ``CircuitOpenError`` (the
API answers 503 with ``Retry-After``) instead of each waiting for a connection timeout.
Filters and arguments are checked before the model or the store is asked: a client's mistake is
a ConfigurationError naming the field, never a store failure that counts toward the breaker."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from docworkers.errors import ConfigurationError
from docworkers.ingest.aliases import resolve_collection
from docworkers.ingest.defaults import (
    FEEDBACK_CHUNKS,
    FEEDBACK_ORIGINAL_WEIGHT,
    FEEDBACK_TERMS,
    HYBRID_DENSE_WEIGHT,
    RRF_K,
    SEARCH_CANDIDATES,
    SEARCH_MODES,
)
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.fusion import rrf, zscore_fusion
from docworkers.ingest.lexical.feedback import rm3
from docworkers.ingest.lexical.index import LexicalIndex
from docworkers.ingest.lexical.tokens import exact_terms, tokenize
from docworkers.ingest.search_filters import SearchFilter
from docworkers.ingest.vector_repository import (
    SearchHit,
    VectorRepository,
    validate_collection_name,
    vector_store_breaker,
)

__all__ = ["MAX_K", "SearchService", "best_per_document", "fuse", "ranked"]

MAX_K = 1000  # the most hits one search returns, and the most keyword candidates it reads


class SearchService:
    """With ``documents`` given, a collection name is resolved through its alias first, so
    searches follow a ``vector_reindex`` to the collection's new physical version, and the
    keyword index is the one in the registry's Redis (unless ``keywords`` is given)."""

    def __init__(self, embedder: Embedder, vectors: VectorRepository,
                 documents: DocumentRepository | None = None, *,
                 keywords: LexicalIndex | None = None, rrf_k: int = RRF_K) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.documents = documents
        if keywords is None and documents is not None:
            keywords = LexicalIndex.for_documents(documents)
        self.keywords = keywords
        self.rrf_k = rrf_k
        self.vector_breaker = vector_store_breaker()

    async def search(
        self, collection: str, query: str, k: int = 5,
        filters: SearchFilter | Mapping[str, Any] | None = None,
        mode: str | None = None, *, group_by_document: bool = False,
    ) -> list[SearchHit]:
        """The ``k`` best chunks of ``collection`` for ``query``, best first, among those
        ``filters`` matches (a :class:`SearchFilter`, or the JSON form it parses: a bad one is
        a ConfigurationError naming ``filters.<field>``, raised before anything is asked).

        ``mode`` is "hybrid", "dense" or "keyword"; None means hybrid, or dense for a service
        built without a keyword index (no ``documents``). ``score`` is the cosine similarity
        in dense mode, the BM25 score in keyword mode and the fused score in hybrid mode (the
        weighted sum of the two sides' z-scores: comparable within one answer only).
        ``group_by_document``: at most one hit per document, its best chunk."""
        mode = self._mode(mode)
        validate_collection_name(collection)
        where = filters if isinstance(filters, SearchFilter) else SearchFilter.parse(filters)
        if not query.strip():
            raise ConfigurationError("query", "must not be empty")
        if not 1 <= k <= MAX_K:
            raise ConfigurationError("k", f"must be between 1 and {MAX_K}")
        if self.documents is not None:
            collection = await resolve_collection(self.documents, collection)
        wanted = k
        while True:
            hits = await self._search(collection, query, wanted, where, mode)
            if not group_by_document:
                return hits
            documents = best_per_document(hits)
            if len(documents) >= k or wanted >= MAX_K or len(hits) < wanted:
                return documents[:k]
            wanted = min(3 * wanted, MAX_K)

    async def _search(self, collection: str, query: str, k: int, where: SearchFilter,
                      mode: str) -> list[SearchHit]:
        if mode == "dense":
            return ranked(await self._dense(collection, query, k, where), "dense")
        if mode == "keyword":
            return ranked(await self._keyword(collection, query, k, where), "keyword")
        return await self._hybrid(collection, query, k, where)

    async def _hybrid(self, collection: str, query: str, k: int,
                      where: SearchFilter) -> list[SearchHit]:
        """Both sides' candidates, ranked by cosine and by BM25 of the query expanded by the
        first fused ranking's best chunks (every candidate scored exactly on both)."""
        assert self.keywords is not None  # checked by _mode
        candidates = max(k, SEARCH_CANDIDATES)
        (vector, dense), keyword, exact = await asyncio.gather(
            self._dense_with_vector(collection, query, candidates, where),
            self._keyword(collection, query, candidates, where),
            self._exact(collection, query, candidates))
        first = rrf([[hit.chunk_id for hit in dense], [hit.chunk_id for hit in keyword]],
                    k=self.rrf_k)
        texts = {hit.chunk_id: hit.text for hit in [*dense, *keyword]}
        # Feedback comes only from chunks that hold a term of the query (the keyword side found
        # them): in a small or narrowly filtered collection the first ranking's best include
        # chunks that merely fill the list, and their words would pull them to the top. The
        # terms are read from the texts, as the index stored them (the same tokenize): no round
        # trip to Redis on the way.
        matched = {hit.chunk_id for hit in keyword}
        feedback = [Counter(tokenize(texts[id_]))
                    for id_ in [id_ for id_, _ in first if id_ in matched][:FEEDBACK_CHUNKS]]
        expanded = rm3(tokenize(query), feedback, terms=FEEDBACK_TERMS,
                       original_weight=FEEDBACK_ORIGINAL_WEIGHT)
        union = list(texts)
        dense_ids = {hit.chunk_id for hit in dense}
        others = [id_ for id_ in union if id_ not in dense_ids]
        similar, rescored = await asyncio.gather(
            asyncio.to_thread(self.vector_breaker.call_sync, self.vectors.similarities,
                              collection, others, vector) if others else _nothing(),
            self.keywords.score(collection, union, expanded))
        cosine = {hit.chunk_id: hit.score for hit in dense} | similar
        return fuse(dense, keyword, k, dense_scores=cosine,
                    keyword_scores=dict(zip(union, rescored, strict=True)), first=exact)

    def _mode(self, mode: str | None) -> str:
        if mode is None:
            return "hybrid" if self.keywords is not None else "dense"
        if mode not in SEARCH_MODES:
            raise ConfigurationError("mode", f"must be one of {', '.join(SEARCH_MODES)}; "
                                             f"got {mode!r}")
        if mode != "dense" and self.keywords is None:
            raise ConfigurationError("mode", f"{mode} search needs the keyword index, which "
                                             "lives in Redis: build the SearchService with the "
                                             "document registry, or search in dense mode")
        return mode

    async def _dense(self, collection: str, query: str, n: int,
                     where: SearchFilter) -> list[SearchHit]:
        return (await self._dense_with_vector(collection, query, n, where))[1]

    async def _dense_with_vector(self, collection: str, query: str, n: int, where: SearchFilter
                                 ) -> tuple[np.ndarray, list[SearchHit]]:
        """The query's embedding and the best ``n`` chunks by it."""
        vector = (await asyncio.to_thread(self.embedder.embed, [query]))[0]
        return vector, await asyncio.to_thread(self.vector_breaker.call_sync,
                                               self.vectors.search, collection, vector, n, where)

    async def _keyword(self, collection: str, query: str, n: int,
                       where: SearchFilter) -> list[SearchHit]:
        """The best ``n`` BM25 matches that ``where`` admits, with text and metadata from the
        vector store. With a filter, more matches are read (4x each round, up to MAX_K) until
        ``n`` pass it or there are no more."""
        assert self.keywords is not None  # checked by _mode
        asked = n if not where else min(4 * n, MAX_K)
        while True:
            found = await self.keywords.search(collection, query, asked)
            stored = await asyncio.to_thread(
                self.vector_breaker.call_sync, self.vectors.chunks_by_ids, collection,
                [hit.chunk_id for hit in found], where)
            if len(stored) >= n or len(found) < asked or asked >= MAX_K:
                break
            asked = min(4 * asked, MAX_K)
        scores = {hit.chunk_id: hit.score for hit in found}
        return [SearchHit.stored(id_, text, metadata, scores[id_])
                for id_, text, metadata in stored[:n]]


    async def _exact(self, collection: str, query: str, n: int) -> set[str]:
        """The chunks (of the best ``n`` by BM25) that contain one of the query's exact
        terms; empty when it has none."""
        assert self.keywords is not None  # checked by _mode
        terms = exact_terms(query)
        if not terms:
            return set()
        found = await self.keywords.search(collection, query, n, terms=terms)
        return {hit.chunk_id for hit in found}


async def _nothing() -> dict[str, float]:
    return {}


def ranked(hits: list[SearchHit], side: str) -> list[SearchHit]:
    """One side's hits, marked as found by it at their ranks."""
    dense = side == "dense"
    return [dataclasses.replace(hit, found_by=(side,), dense_rank=rank if dense else None,
                                keyword_rank=None if dense else rank)
            for rank, hit in enumerate(hits, start=1)]


def fuse(dense: list[SearchHit], keyword: list[SearchHit], k: int, *,
         dense_scores: Mapping[str, float] | None = None,
         keyword_scores: Mapping[str, float] | None = None,
         dense_weight: float = HYBRID_DENSE_WEIGHT,
         first: set[str] | frozenset[str] = frozenset()) -> list[SearchHit]:
    """The best ``k`` of both sides' candidates by the weighted sum of their z-scored scores
    (:func:`~docworkers.ingest.fusion.zscore_fusion`, ``dense_weight`` for the dense score,
    ``1 - dense_weight`` for the keyword score), the chunks in ``first`` (those with an exact
    term of the query) ahead of the others. A side's scores are ``dense_scores`` /
    ``keyword_scores`` when given (for any candidate: hybrid search scores every candidate on
    both sides), else its hits' own; a candidate without one gets that side's lowest.
    ``score`` is the fused score; ``found_by`` and the ranks say which side's candidates held
    the chunk and where."""
    dense_ranks = {hit.chunk_id: rank for rank, hit in enumerate(dense, start=1)}
    keyword_ranks = {hit.chunk_id: rank for rank, hit in enumerate(keyword, start=1)}
    by_id = {hit.chunk_id: hit for hit in keyword} | {hit.chunk_id: hit for hit in dense}

    def side(hits: list[SearchHit], scores: Mapping[str, float] | None
             ) -> list[tuple[str, float]]:
        if scores is None:
            return [(hit.chunk_id, hit.score) for hit in hits]
        return sorted(((id_, scores[id_]) for id_ in by_id if id_ in scores),
                      key=lambda pair: -pair[1])

    fused = zscore_fusion([side(dense, dense_scores), side(keyword, keyword_scores)],
                          weights=(dense_weight, 1.0 - dense_weight))
    fused.sort(key=lambda pair: pair[0] not in first)  # stable: fused order within each part
    return [
        dataclasses.replace(
            by_id[id_], score=score,
            found_by=tuple(side for side, ranks in (("dense", dense_ranks),
                                                    ("keyword", keyword_ranks)) if id_ in ranks),
            dense_rank=dense_ranks.get(id_), keyword_rank=keyword_ranks.get(id_))
        for id_, score in fused[:k]
    ]


def best_per_document(hits: list[SearchHit]) -> list[SearchHit]:
    """Each document's best hit (its first in ``hits``, best first), in order: passage hits as
    document hits (MaxP)."""
    seen: set[str] = set()
    documents = []
    for hit in hits:
        if hit.document_id not in seen:
            seen.add(hit.document_id)
            documents.append(hit)
    return documents
