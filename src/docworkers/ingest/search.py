"""Search over stored chunks: by meaning (dense), by keywords (BM25), or both fused (hybrid).

* dense: embed the query, ask the vector store for the nearest chunks.
* keyword: ask the collection's keyword index (:mod:`docworkers.ingest.lexical`) for the best
  BM25 matches, then read their text and metadata from the vector store by id, with the
  filters as its ``where`` clause: the filter language is the vector store's, so it applies to
  both sides alike.
* hybrid (the default): both sides' best ``max(k, SEARCH_CANDIDATES)`` are the candidates,
  read as ids and scores only (the vector store's ``nearest``, and ``similarities`` for the
  keyword side's cosines, which applies the filters too); the texts and metadata are read for
  the ``k`` hits returned, not for every candidate: at 100,000 chunks reading 50 candidates'
  texts cost more than the nearest-neighbour search itself (README, Performance). The
  candidates' reciprocal rank fusion (:mod:`docworkers.ingest.fusion`) picks the best
  ``FEEDBACK_CHUNKS`` the keyword side found, whose most frequent index terms expand the
  keyword query (RM3, :mod:`docworkers.ingest.lexical.feedback`). Then every candidate is
  scored on both sides: its cosine similarity and its BM25 for the expanded query
  (:meth:`LexicalIndex.score`: a bounded rescoring of the candidates, not a second search of
  the index, whose cost grows with the added terms' postings), and they are ranked by
  ``HYBRID_DENSE_WEIGHT`` x z(cosine) + (1 - it) x z(BM25) (README, Performance: on
  Cranfield this beats RRF of the two sides; weights, min-max fusion and per-document fusion
  alone did not). A chunk only one side found can still win.
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
from collections.abc import Awaitable, Callable, Mapping, Sequence, Sized
from typing import Any, TypeVar

import numpy as np

from docworkers.errors import ConfigurationError, one_of
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
from docworkers.ingest.lexical.index import LexicalHit, LexicalIndex
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
_Admitted = TypeVar("_Admitted", bound=Sized)  # what a keyword side's read kept of the ids


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
        first fused ranking's best chunks (every candidate scored exactly on both); texts and
        metadata are read for the hits returned only."""
        assert self.keywords is not None  # checked by _mode
        candidates = max(k, SEARCH_CANDIDATES)
        vector = asyncio.ensure_future(asyncio.to_thread(self.embedder.embed, [query]))
        try:
            dense, (keyword, keyword_cosines), exact = await asyncio.gather(
                self._nearest(collection, vector, candidates, where),
                self._keyword_candidates(collection, query, candidates, where, vector),
                self._exact(collection, query, candidates))
        finally:
            vector.cancel()  # done by now, unless a side failed first
        dense_ids = [id_ for id_, _ in dense]
        keyword_ids = [hit.chunk_id for hit in keyword]
        first = rrf([dense_ids, keyword_ids], k=self.rrf_k)
        # Feedback comes only from chunks that hold a term of the query (the keyword side found
        # them): in a small or narrowly filtered collection the first ranking's best include
        # chunks that merely fill the list, and their words would pull them to the top. Their
        # terms are the index's records of them (what BM25 scores).
        matched = set(keyword_ids)
        feedback_ids = [id_ for id_, _ in first if id_ in matched][:FEEDBACK_CHUNKS]
        counts = await self.keywords.term_counts(collection, feedback_ids)
        expanded = rm3(tokenize(query), [counts[id_] for id_ in feedback_ids if id_ in counts],
                       terms=FEEDBACK_TERMS, original_weight=FEEDBACK_ORIGINAL_WEIGHT)
        union = list(dict.fromkeys([*dense_ids, *keyword_ids]))
        rescored = await self.keywords.score(collection, union, expanded)
        fused = fuse(dense_ids, keyword_ids, k, dense_scores=keyword_cosines | dict(dense),
                     keyword_scores=dict(zip(union, rescored, strict=True)), first=exact)
        stored = await asyncio.to_thread(self.vector_breaker.call_sync,
                                         self.vectors.chunks_by_ids, collection,
                                         [id_ for id_, _ in fused])
        found = {id_: (text, metadata) for id_, text, metadata in stored}
        dense_ranks = {id_: rank for rank, id_ in enumerate(dense_ids, start=1)}
        keyword_ranks = {id_: rank for rank, id_ in enumerate(keyword_ids, start=1)}
        return [  # a chunk deleted since the candidates were read is left out
            dataclasses.replace(SearchHit.stored(id_, *found[id_], score),
                                found_by=_found_by(id_, dense_ranks, keyword_ranks),
                                dense_rank=dense_ranks.get(id_),
                                keyword_rank=keyword_ranks.get(id_))
            for id_, score in fused if id_ in found]

    def _mode(self, mode: str | None) -> str:
        if mode is None:
            return "hybrid" if self.keywords is not None else "dense"
        mode = one_of("mode", mode, SEARCH_MODES)
        if mode != "dense" and self.keywords is None:
            raise ConfigurationError("mode", f"{mode} search needs the keyword index, which "
                                             "lives in Redis: build the SearchService with the "
                                             "document registry, or search in dense mode")
        return mode

    async def _dense(self, collection: str, query: str, n: int,
                     where: SearchFilter) -> list[SearchHit]:
        """The best ``n`` chunks by the query's embedding."""
        vector = (await asyncio.to_thread(self.embedder.embed, [query]))[0]
        return await asyncio.to_thread(self.vector_breaker.call_sync, self.vectors.search,
                                       collection, vector, n, where)

    async def _nearest(self, collection: str, vector: Awaitable[np.ndarray], n: int,
                       where: SearchFilter) -> list[tuple[str, float]]:
        """The ids and cosines of the best ``n`` chunks by the query's embedding."""
        query = (await vector)[0]
        return await asyncio.to_thread(self.vector_breaker.call_sync, self.vectors.nearest,
                                       collection, query, n, where)

    async def _keyword(self, collection: str, query: str, n: int,
                       where: SearchFilter) -> list[SearchHit]:
        """The best ``n`` BM25 matches that ``where`` admits, with text and metadata from the
        vector store (see :meth:`_admitted`)."""
        async def read(ids: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
            return await asyncio.to_thread(self.vector_breaker.call_sync,
                                           self.vectors.chunks_by_ids, collection, ids, where)

        found, stored = await self._admitted(collection, query, n, where, read)
        scores = {hit.chunk_id: hit.score for hit in found}
        return [SearchHit.stored(id_, text, metadata, scores[id_])
                for id_, text, metadata in stored[:n]]

    async def _keyword_candidates(self, collection: str, query: str, n: int,
                                  where: SearchFilter, vector: Awaitable[np.ndarray]
                                  ) -> tuple[list[LexicalHit], dict[str, float]]:
        """As :meth:`_keyword`, for hybrid search: the hits without their texts, and their
        cosines to the query (one read of their embeddings, which applies the filter too)."""
        async def read(ids: list[str]) -> dict[str, float]:
            query_vector = (await vector)[0]
            return await asyncio.to_thread(self.vector_breaker.call_sync,
                                           self.vectors.similarities, collection, ids,
                                           query_vector, where)

        found, cosines = await self._admitted(collection, query, n, where, read)
        kept = [hit for hit in found if hit.chunk_id in cosines][:n]
        return kept, {hit.chunk_id: cosines[hit.chunk_id] for hit in kept}

    async def _admitted(self, collection: str, query: str, n: int, where: SearchFilter,
                        read: Callable[[list[str]], Awaitable[_Admitted]]
                        ) -> tuple[list[LexicalHit], _Admitted]:
        """The BM25 matches of ``query`` and what ``read`` gives of their ids, which holds
        those ``where`` admits (the filter language is the vector store's). With a filter,
        more matches are read (4x each round, up to MAX_K) until ``n`` pass it or there are
        no more."""
        assert self.keywords is not None  # checked by _mode
        asked = n if not where else min(4 * n, MAX_K)
        while True:
            found = await self.keywords.search(collection, query, asked)
            admitted = await read([hit.chunk_id for hit in found])
            if len(admitted) >= n or len(found) < asked or asked >= MAX_K:
                return found, admitted
            asked = min(4 * asked, MAX_K)

    async def _exact(self, collection: str, query: str, n: int) -> set[str]:
        """The chunks (of the best ``n`` by BM25) that contain one of the query's exact
        terms; empty when it has none."""
        assert self.keywords is not None  # checked by _mode
        terms = exact_terms(query)
        if not terms:
            return set()
        found = await self.keywords.search(collection, query, n, terms=terms)
        return {hit.chunk_id for hit in found}


def ranked(hits: list[SearchHit], side: str) -> list[SearchHit]:
    """One side's hits, marked as found by it at their ranks."""
    dense = side == "dense"
    return [dataclasses.replace(hit, found_by=(side,), dense_rank=rank if dense else None,
                                keyword_rank=None if dense else rank)
            for rank, hit in enumerate(hits, start=1)]


def fuse(dense: Sequence[str], keyword: Sequence[str], k: int, *,
         dense_scores: Mapping[str, float], keyword_scores: Mapping[str, float],
         dense_weight: float = HYBRID_DENSE_WEIGHT,
         first: set[str] | frozenset[str] = frozenset()) -> list[tuple[str, float]]:
    """The best ``k`` of both sides' candidates (``dense`` and ``keyword``: ids, best first)
    by the weighted sum of their z-scored scores
    (:func:`~docworkers.ingest.fusion.zscore_fusion`, ``dense_weight`` for the dense score,
    ``1 - dense_weight`` for the keyword score), the chunks in ``first`` (those with an exact
    term of the query) ahead of the others: ``(id, fused score)``, best first. Each side's
    score of a candidate is its entry in ``dense_scores`` / ``keyword_scores`` (hybrid search
    scores every candidate on both sides); a candidate without one gets that side's lowest."""
    candidates = list(dict.fromkeys([*keyword, *dense]))

    def side(scores: Mapping[str, float]) -> list[tuple[str, float]]:
        return sorted(((id_, scores[id_]) for id_ in candidates if id_ in scores),
                      key=lambda pair: -pair[1])

    fused = zscore_fusion([side(dense_scores), side(keyword_scores)],
                          weights=(dense_weight, 1.0 - dense_weight))
    fused.sort(key=lambda pair: pair[0] not in first)  # stable: fused order within each part
    return fused[:k]


def _found_by(id_: str, dense_ranks: Mapping[str, int], keyword_ranks: Mapping[str, int]
              ) -> tuple[str, ...]:
    return tuple(side for side, ranks in (("dense", dense_ranks), ("keyword", keyword_ranks))
                 if id_ in ranks)


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
