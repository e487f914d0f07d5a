"""The keyword (BM25) index of each physical collection, in Redis next to the document registry.

Chroma's own sparse index is not available locally, so the keyword side of search lives in the
Redis every worker and API process shares, under the registry's ``{documents}`` hash tag: one
script can check a job attempt's fence (:mod:`docworkers.ingest.fencing`) and write the index,
so a fenced-out attempt changes nothing, and every change of a document is one atomic script
call (a document of more than :data:`BATCH_CHUNKS` chunks takes several, see
:meth:`LexicalIndex.replace_document`). The keys are in :mod:`docworkers.ingest.lexical.keys`.

Every key a script touches arrives through KEYS, though the postings keys of the chunks a write
replaces or removes are known only from what Redis stores. The client passes the postings keys
of the new chunks' terms; a script that finds it lacks some returns their terms without writing
anything, and the client calls it again with them. An identical rewrite or a first upload takes
one call; a changed document two.

A search is one script call that blocks Redis while it runs, so its work is bounded: see
:meth:`LexicalIndex.search` for the common terms (measured on 100,000 synthetic 200-word chunks
in the report of issue 15). :meth:`LexicalIndex.score` scores given chunks only (hybrid search's
rescoring with an expanded query) from one pipelined read of their records and the terms'
document frequencies, the arithmetic done by the client, so Redis is not blocked for it.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from docworkers.errors import RetryableJobError
from docworkers.ingest.defaults import BM25_B, BM25_K1
from docworkers.ingest.fencing import fenced
from docworkers.ingest.lexical.keys import LexicalKeys
from docworkers.ingest.lexical.tokens import tokenize
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import RegistryKeys
from docworkers.queue.redis.scripts import register

if TYPE_CHECKING:
    from docworkers.ingest.document_repository import DocumentRepository
    from docworkers.ingest.fencing import AttemptFence

__all__ = ["BATCH_CHUNKS", "BM25_B", "BM25_K1", "COMMON_CANDIDATES", "COMMON_DF", "COMMON_SHARE",
           "LexicalChunk", "LexicalConflictError", "LexicalHit", "LexicalIndex", "LexicalSize",
           "chunk_record"]

_LUA = "docworkers.ingest"  # the package of its scripts (ingest/lua)
BATCH_CHUNKS = 200  # chunks per script call of a write
BATCH_BYTES = 1 << 20  # and about this many bytes of records
DROP_BATCH = 1000  # postings keys deleted per script call
MAX_TF = 65535  # a posting packs tf + length * 2^16
# See LexicalIndex.search. At 100,000 synthetic chunks (benchmarks/search_scale.py data) 0.02
# halves the search's p50 against 0.1 (5.2 vs 11.6 ms) while its top 10 keeps 87.7 % of the
# exact BM25 top 10 (0.1: 87.9 %; the rest is lost by queries of common terms only). Below
# 50,000 chunks COMMON_DF decides, as before.
COMMON_SHARE = 0.02
COMMON_DF = 1000  # below this df a term is never common: its postings cost little
COMMON_CANDIDATES = 10_000
_ROUNDS = 20  # calls of one script before a write gives up (each round names missing keys)


class LexicalConflictError(RetryableJobError):
    """Another write of the same document (or drop of the collection) kept changing what this
    write had to replace: retry later."""

    code = "lexical_conflict"


@dataclass(frozen=True, slots=True)
class LexicalChunk:
    chunk_id: str  # "<document_id>:<index>", as in Chroma
    document_id: str
    text: str


@dataclass(frozen=True, slots=True)
class LexicalHit:
    chunk_id: str
    document_id: str
    score: float  # BM25, higher is better
    rank: int  # 1-based


@dataclass(frozen=True, slots=True)
class LexicalSize:
    chunks: int
    terms: int
    bytes: int  # MEMORY USAGE summed over every key of the collection's index


def chunk_record(text: str) -> tuple[str, list[str]]:
    """The stored record of a chunk, ``"<length> <term> <tf> ..."`` (terms sorted, so equal
    texts give equal records), and its distinct terms. Length is the number of terms."""
    counts = Counter(tokenize(text))
    terms = sorted(counts)
    fields = [str(sum(counts.values()))]
    for term in terms:
        fields += (term, str(min(counts[term], MAX_TF)))
    return " ".join(fields), terms


def _batches(records: Sequence[tuple[str, str, list[str]]]
             ) -> Iterator[Sequence[tuple[str, str, list[str]]]]:
    """Runs of at most BATCH_CHUNKS records and about BATCH_BYTES (at least one record)."""
    start, size = 0, 0
    for i, (chunk_id, record, _) in enumerate(records):
        size += len(chunk_id) + len(record)
        if i > start and (i - start >= BATCH_CHUNKS or size > BATCH_BYTES):
            yield records[start:i]
            start, size = i, len(chunk_id) + len(record)
    if start < len(records) or not records:
        yield records[start:]


class LexicalIndex:
    """BM25 keyword index per (physical) collection, kept in Redis under the {documents} hash
    tag (the registry's slot: one script can check the attempt's fence and write)."""

    def __init__(self, client: Redis, *, url: str = "", namespace: str = "dw") -> None:
        self.client = client
        self.url = url
        self.registry = RegistryKeys("documents", namespace)
        self._replace: AsyncScript = register(client, "lexical_replace", _LUA)
        self._search: AsyncScript = register(client, "lexical_search", _LUA)
        self._drop: AsyncScript = register(client, "lexical_drop", _LUA)

    @classmethod
    def for_documents(cls, documents: DocumentRepository) -> Self:
        """The index next to ``documents``' registry (same client and pool, same namespace)."""
        return cls(documents.client, url=documents.url, namespace=documents.keys.namespace)

    def keys(self, collection: str) -> LexicalKeys:
        return LexicalKeys(self.registry, collection)

    def errors(self, what: str, collection: str) -> RedisErrors:
        return RedisErrors(f"keyword index ({what}) of collection {collection!r}", url=self.url)

    # -- writes -------------------------------------------------------------------------------

    async def replace_document(self, collection: str, document_id: str,
                               chunks: Sequence[LexicalChunk], *,
                               fence: AttemptFence | None = None) -> None:
        """Make ``chunks`` the document's complete content in ``collection``'s index.

        Idempotent: an identical chunk changes nothing, a changed one is replaced, and the
        document's chunk ids not in ``chunks`` are removed. Up to BATCH_CHUNKS chunks are one
        atomic script call. A larger document takes several calls under a write token; the last
        removes the old chunks. A newer write of the document that starts meanwhile makes this
        one stop with LexicalConflictError (the newer write leaves its own set, never a mix).
        LeaseLostError if ``fence`` no longer holds (then the refused call wrote nothing).
        """
        keys = self.keys(collection)
        # Tokenizing takes about 0.5 ms a chunk: off the event loop, which renews leases.
        records = await asyncio.to_thread(_records, document_id, chunks)
        batches = list(_batches(records))
        token = uuid.uuid4().hex if len(batches) > 1 else ""
        every_id = [chunk_id for chunk_id, _, _ in records] if len(batches) > 1 else []
        for i, batch in enumerate(batches):
            first, last = i == 0, i == len(batches) - 1
            terms = sorted({term for _, _, chunk_terms in batch for term in chunk_terms})
            args: list[Any] = [document_id, token, int(first), int(last), len(batch)]
            for chunk_id, record, _ in batch:
                args += (chunk_id, record)
            if last:
                args += every_id
            await self._write(keys, terms, args, fence,
                              f"writing the keywords of document {document_id}")

    async def remove_document(self, collection: str, document_id: str, *,
                              fence: AttemptFence | None = None) -> int:
        """Remove every chunk of ``document_id``; how many. LeaseLostError if ``fence`` no
        longer holds (nothing removed)."""
        keys = self.keys(collection)
        args: list[Any] = [document_id, "", 1, 1, 0]
        return await self._write(keys, [], args, fence,
                                 f"removing the keywords of document {document_id}")

    async def _write(self, keys: LexicalKeys, terms: list[str], args: list[Any],
                     fence: AttemptFence | None, what: str) -> int:
        """One call of lexical_replace.lua, again with the postings keys it names as missing;
        the number of chunks it removed."""
        terms = list(terms)
        for _ in range(_ROUNDS):
            script_keys, script_args = fenced(
                [*keys.fixed(), *(keys.postings(term) for term in terms)],
                [args[0], len(terms), len(keys.postings_prefix.encode()), *args[1:]], fence)
            with self.errors("write", keys.collection):
                reply = await self._replace(keys=script_keys, args=script_args)
            status = int(reply[0])
            if status == 1:
                return int(reply[2])
            if status == 0:
                assert fence is not None
                raise fence.lost(what)
            if status == -1:
                raise LexicalConflictError(
                    f"collection {keys.collection!r}: a newer write of document {args[0]} "
                    f"started before this one ({what}) was done; the newer write stands and "
                    "this job runs again")
            terms += [_text(term) for term in reply[1:]]
        raise LexicalConflictError(
            f"collection {keys.collection!r}: {what} kept meeting concurrent changes of the "
            f"same document ({_ROUNDS} tries); the job runs again")

    async def drop_collection(self, collection: str) -> int:
        """Delete every key of ``collection``'s index; how many chunks it held."""
        keys = self.keys(collection)
        cut = len(keys.postings_prefix.encode())
        fixed = [keys.terms, keys.chunks, keys.documents, keys.stats, keys.writers, keys.numbers]
        with self.errors("drop", collection):
            for _ in range(_ROUNDS):
                terms = sorted(_text(term) for term in await cast(
                    "Awaitable[set[str | bytes]]", self.client.smembers(keys.terms)))
                for start in range(0, len(terms), DROP_BATCH):
                    batch = [keys.postings(term) for term in terms[start:start + DROP_BATCH]]
                    await self._drop(keys=[*fixed, *batch],
                                     args=[cut, 0])
                dropped = int(await self._drop(keys=fixed, args=[cut, 1]))
                if dropped >= 0:
                    return dropped
        raise LexicalConflictError(
            f"collection {collection!r}: its keyword index kept gaining terms while it was "
            f"dropped ({_ROUNDS} tries); the job runs again")

    # -- reads --------------------------------------------------------------------------------

    async def chunk_ids(self, collection: str, document_id: str | None = None) -> set[str]:
        """The chunk ids of ``collection`` (of one document, if given) in the index."""
        keys = self.keys(collection)
        with self.errors("read", collection):
            if document_id is None:
                return {_text(chunk_id) for chunk_id in await cast(
                    "Awaitable[list[str | bytes]]", self.client.hkeys(keys.chunks))}
            listed = await cast("Awaitable[str | bytes | None]",
                                self.client.hget(keys.documents, document_id))
        return set(_text(listed).split()) if listed else set()

    async def search(self, collection: str, query: str, k: int, *,
                     k1: float = BM25_K1, b: float = BM25_B,
                     common_share: float = COMMON_SHARE, common_df: int = COMMON_DF,
                     common_candidates: int = COMMON_CANDIDATES,
                     terms: Sequence[str] | Mapping[str, float] | None = None
                     ) -> list[LexicalHit]:
        """The ``k`` best chunks for ``query`` by BM25, best first; [] when no query term is
        indexed. ``terms``: score these index terms instead of the query's (e.g. only its
        :func:`~docworkers.ingest.lexical.tokens.exact_terms`); a mapping gives each term a
        weight that multiplies its contribution (an expanded query,
        :mod:`~docworkers.ingest.lexical.feedback`).

        A term in more than ``common_share`` of the chunks and more than ``common_df`` chunks
        is *common*: it adds to the score of the chunks the query's rarer terms found, exactly,
        but finds none itself, so a query costs about the postings of its rare terms (a common
        term's postings are most of the chunks). A chunk with only common query terms is
        missed. A query of common terms only takes its candidates from its rarest term, at
        most ``common_candidates`` of them. ``common_share=1`` scores every chunk exactly.
        """
        if k < 1:
            return []
        keys = self.keys(collection)
        weights: list[str] = []
        if isinstance(terms, Mapping):
            weighted = sorted((term, weight) for term, weight in terms.items() if weight > 0)
            terms = [term for term, _ in weighted]
            weights = [repr(float(weight)) for _, weight in weighted]
        else:
            terms = sorted(set(tokenize(query) if terms is None else terms))
        if not terms:
            return []
        with self.errors("search", collection):
            reply = await self._search(
                keys=[keys.stats, keys.numbers, *(keys.postings(term) for term in terms)],
                args=[k, repr(k1), repr(b), repr(common_share), common_df, common_candidates,
                      *weights])
        ids = [_text(chunk_id) for chunk_id in reply[::2]]
        return [LexicalHit(chunk_id=chunk_id, document_id=chunk_id.rpartition(":")[0],
                           score=float(score), rank=rank)
                for rank, (chunk_id, score) in enumerate(zip(ids, reply[1::2], strict=True),
                                                         start=1)]

    async def score(self, collection: str, chunk_ids: Sequence[str],
                    terms: Mapping[str, float], *, k1: float = BM25_K1, b: float = BM25_B
                    ) -> list[float]:
        """The BM25 score of each of ``chunk_ids`` for the weighted ``terms`` (as
        :meth:`search` would give it; 0 for a chunk not indexed or without any of them), in
        order: how hybrid search rescores its candidates with an expanded query without
        searching the whole index again.

        One pipelined round trip reads the chunks' records and the terms' document
        frequencies, and the scores are computed here, not in a script: Redis does
        chunks + terms lookups (~0.5 ms for 100 chunks and 43 terms at 100,000 chunks) instead
        of chunks x terms inside a script that blocks every other client (~4 ms)."""
        weighted = sorted((term, weight) for term, weight in terms.items() if weight > 0)
        if not chunk_ids or not weighted:
            return [0.0] * len(chunk_ids)
        keys = self.keys(collection)
        with self.errors("score", collection):
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(keys.stats, ["chunks", "length"])
            pipe.hmget(keys.chunks, list(chunk_ids))
            for term, _ in weighted:
                pipe.hlen(keys.postings(term))
            stats, records, *dfs = await pipe.execute()
        n = int(stats[0] or 0)
        if n <= 0:
            return [0.0] * len(chunk_ids)
        avgdl = int(stats[1] or 0) / n or 1.0
        base, slope = k1 * (1 - b), k1 * b / avgdl
        # each term's idf x (k1 + 1) x weight, as lexical_search.lua weighs it
        factors = {term: math.log(1 + (n - int(df) + 0.5) / (int(df) + 0.5)) * (k1 + 1) * weight
                   for (term, weight), df in zip(weighted, dfs, strict=True) if int(df) > 0}
        return [_bm25(_text(record), factors, base, slope) if record is not None else 0.0
                for record in records]

    async def term_counts(self, collection: str, chunk_ids: Sequence[str]
                          ) -> dict[str, dict[str, int]]:
        """The index terms of each of ``chunk_ids`` with their counts (as stored: what BM25
        scores), for pseudo-relevance feedback; ids not in the index are left out."""
        if not chunk_ids:
            return {}
        keys = self.keys(collection)
        with self.errors("read", collection):
            stored = await cast("Awaitable[list[str | bytes | None]]",
                                self.client.hmget(keys.chunks, list(chunk_ids)))
        counts: dict[str, dict[str, int]] = {}
        for chunk_id, record in zip(chunk_ids, stored, strict=True):
            if record is not None:
                fields = _text(record).split()  # number, length, then term, tf pairs
                counts[chunk_id] = {term: int(tf) for term, tf in zip(fields[2::2],
                                                                      fields[3::2], strict=True)}
        return counts

    async def size(self, collection: str) -> LexicalSize:
        """Chunks, terms and bytes (MEMORY USAGE of every key) of ``collection``'s index."""
        keys = self.keys(collection)
        with self.errors("size", collection):
            chunks = int(await cast("Awaitable[int]", self.client.hlen(keys.chunks)))
            terms = sorted(_text(term) for term in await cast(
                "Awaitable[set[str | bytes]]", self.client.smembers(keys.terms)))
            total = 0
            names = keys.fixed() + [keys.postings(term) for term in terms]
            for start in range(0, len(names), DROP_BATCH):
                pipe = self.client.pipeline(transaction=False)
                for name in names[start:start + DROP_BATCH]:
                    pipe.memory_usage(name, samples=0)
                total += sum(int(used or 0) for used in await pipe.execute())
        return LexicalSize(chunks=chunks, terms=len(terms), bytes=total)


def _records(document_id: str, chunks: Sequence[LexicalChunk]
             ) -> list[tuple[str, str, list[str]]]:
    """(chunk id, record, distinct terms) of each chunk, checked."""
    records = []
    seen: set[str] = set()
    for chunk in chunks:
        _check_chunk(document_id, chunk, seen)
        record, terms = chunk_record(chunk.text)
        records.append((chunk.chunk_id, record, terms))
    return records


def _bm25(record: str, factors: Mapping[str, float], base: float, slope: float) -> float:
    """A stored record's BM25 (``"<number> <length> <term> <tf> ..."``) for the weighted
    terms ``factors`` (idf x (k1 + 1) x weight): the sum over the terms it holds of factor x
    tf / (tf + k1 x (1 - b + b x length / avgdl))."""
    fields = record.split()
    counts = dict(zip(fields[2::2], fields[3::2], strict=True))
    norm = base + slope * int(fields[1])
    score = 0.0
    for term, factor in factors.items():
        tf = counts.get(term)
        if tf is not None:
            score += factor * int(tf) / (int(tf) + norm)
    return score


def _text(value: str | bytes) -> str:
    """A reply's string, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_chunk(document_id: str, chunk: LexicalChunk, seen: set[str]) -> None:
    """A chunk of ``document_id`` named ``<document_id>:<index>`` (search derives the document
    from the id), with no whitespace in its id (ids are stored space separated), once."""
    if chunk.document_id != document_id or not chunk.chunk_id.startswith(f"{document_id}:"):
        raise ValueError(f"chunk {chunk.chunk_id!r} (of document {chunk.document_id!r}) is not a "
                         f"chunk '<document_id>:<index>' of document {document_id!r}")
    if not document_id or any(c.isspace() for c in chunk.chunk_id):
        raise ValueError(f"chunk id {chunk.chunk_id!r} must be non-empty and have no whitespace")
    if chunk.chunk_id in seen:
        raise ValueError(f"chunk id {chunk.chunk_id!r} appears twice in document {document_id}")
    seen.add(chunk.chunk_id)
