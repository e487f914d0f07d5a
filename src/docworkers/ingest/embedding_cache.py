"""An embedding cache in Redis: a chunk whose exact text was embedded before, by the same model,
is not embedded again (LlamaIndex's ingestion cache is the model for this).

Re-uploading a document, or a new version of it whose chunks partly match the old one, then
costs the model only the chunks whose text changed. The cache lives in Redis so every worker
process (and host) shares it.

* Key: ``<ns>:{embeddings}:e:<id>``, ``id`` = BLAKE2b-128 of (the model's identity: its class,
  name, dimension, window, and for a local model its file's name and size; then the exact
  text). Two models never share an entry; the same text under the same model always maps to the
  same key and the same value, so every write is idempotent.
* Value: the vector's float32 bytes (384 dimensions: 1,536 bytes), read through a client of its
  own that does not decode replies (the runtime's client decodes to ``str``; base64 through it
  would take a third more memory and CPU both ways).
* Bounded: at most ``max_entries`` entries (:data:`~docworkers.ingest.defaults.
  EMBEDDING_CACHE_MAX_ENTRIES`); a write past the cap evicts the entries stored longest ago
  (``lua/embedding_cache_store.lua``, with an index zset). Each entry also expires ``ttl``
  seconds after it was last stored. Measured on Redis 7: 2.1 KB per 384-dim entry with its index
  member, so the default cap of 50,000 entries is ~105 MB at most.
* Cost: one ``MGET`` per embedding request (a group of up to 64 chunks) and, when some missed,
  one script call storing them: two round trips per group, whatever the hit rate.
* A Redis failure never fails a job: the texts go to the model, and the failure is logged once
  per process until the cache works again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

import numpy as np
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from docworkers.errors import ConfigurationError, DocworkersError
from docworkers.ingest.defaults import EMBEDDING_CACHE_MAX_ENTRIES, EMBEDDING_CACHE_TTL
from docworkers.ingest.embedding import Embedder, Vectors
from docworkers.queue.redis.clients import async_client
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.scripts import register

__all__ = ["AsyncEmbedder", "CacheCounts", "CachedEmbedder", "EmbeddingCache",
           "EmbeddingCacheKeys", "model_identity"]

log = logging.getLogger("docworkers.ingest.embedding_cache")

_LUA = "docworkers.ingest"


class AsyncEmbedder(Protocol):
    """What an upload embeds through: the batching embedder, or the cache in front of it."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Vectors: ...


def model_identity(embedder: Embedder) -> str:
    """What makes two embedders give the same vector for the same text (rows are always
    L2-normalised, see :class:`Embedder`). A local model's file is named by name and size, not
    path, so workers on other hosts or in other virtual environments share entries."""
    parts = [type(embedder).__qualname__, embedder.model_name, str(embedder.dimension),
             str(embedder.max_tokens), "l2"]
    path = getattr(embedder, "model_path", None)
    if isinstance(path, Path):
        parts.append(f"{path.name}:{path.stat().st_size}")
    return "|".join(parts)


@dataclass(frozen=True, slots=True)
class EmbeddingCacheKeys:
    """The cache's key names (pure functions), under the ``{embeddings}`` hash tag: one slot,
    so a script may write entries and the index together, on Redis Cluster too."""

    namespace: str = "dw"

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:{{embeddings}}:"

    @property
    def entry_prefix(self) -> str:
        return self.prefix + "e:"

    def entry(self, entry_id: str) -> str:
        return self.entry_prefix + entry_id

    @property
    def index(self) -> str:
        """ZSET entry id -> when it was stored (ms): the eviction order."""
        return self.prefix + "index"


def entry_id(identity: str, text: str) -> str:
    digest = hashlib.blake2b(identity.encode(), digest_size=16)
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class EmbeddingCache:
    """Vectors by entry id in Redis, bounded by ``max_entries`` and ``ttl`` (seconds).

    ``client`` must not decode replies (see :meth:`from_url`)."""

    def __init__(self, client: aioredis.Redis, *, namespace: str = "dw",
                 max_entries: int = EMBEDDING_CACHE_MAX_ENTRIES,
                 ttl: float = EMBEDDING_CACHE_TTL, url: str = "redis") -> None:
        if max_entries < 1:
            raise ConfigurationError("max_entries", f"must be at least 1, got {max_entries}")
        if ttl < 0:
            raise ConfigurationError("ttl", f"must be >= 0 seconds (0: none), got {ttl}")
        self.client = client
        self.keys = EmbeddingCacheKeys(namespace)
        self.max_entries = max_entries
        self.ttl = ttl
        self._errors = RedisErrors("embedding cache", url=url)
        self._store: AsyncScript = register(client, "embedding_cache_store", _LUA)

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "dw",
                 max_entries: int = EMBEDDING_CACHE_MAX_ENTRIES,
                 ttl: float = EMBEDDING_CACHE_TTL) -> Self:
        """A cache on a client of its own that does not decode replies (vectors are bytes)."""
        client = async_client(url, decode_responses=False)
        return cls(client, namespace=namespace, max_entries=max_entries, ttl=ttl, url=url)

    async def get_many(self, ids: Sequence[str]) -> list[bytes | None]:
        """The stored vector bytes of each id (None: not cached), in one round trip."""
        if not ids:
            return []
        with self._errors:
            values: list[bytes | None] = await self.client.mget(
                [self.keys.entry(i) for i in ids])
        return values

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> int:
        """Store ``(id, vector bytes)`` pairs in one round trip; the entries evicted."""
        if not items:
            return 0
        args: list[str | bytes | int] = [int(time.time() * 1000), int(self.ttl * 1000),
                                         self.max_entries]
        for item_id, value in items:
            args += [item_id, value]
        with self._errors:
            evicted = await self._store(keys=[self.keys.index, self.keys.entry_prefix],
                                        args=args)
        return int(evicted)

    async def entries(self) -> int:
        """How many entries the cache holds (its index's size)."""
        with self._errors:
            return int(await self.client.zcard(self.keys.index))

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass(slots=True)
class CacheCounts:
    """Texts not sent to the model (found in the cache, or repeating a text of the same
    request), texts sent to the model, and cache requests that failed."""

    hits: int = 0
    misses: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class CachedEmbedder:
    """The cache in front of an async embedder (the process's batching embedder): only the
    texts the cache lacks go to the model, each distinct text once; rows come back in order.

    Cheap to build: make one per job to count that job's hits (``counts``); ``totals`` are
    shared by every front built with the same ``totals`` object (the process's counters)."""

    _failing = False  # process-wide: log a failing cache once, not once per request

    def __init__(self, model: AsyncEmbedder, cache: EmbeddingCache, identity: str, *,
                 totals: CacheCounts | None = None) -> None:
        self.model = model
        self.cache = cache
        self.identity = identity
        self.counts = CacheCounts()
        self.totals = totals if totals is not None else CacheCounts()

    @property
    def model_name(self) -> str:
        return self.model.model_name

    @property
    def dimension(self) -> int:
        return self.model.dimension

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        if not texts:
            return await self.model.embed(texts)
        ids = [entry_id(self.identity, text) for text in texts]
        try:
            found = await self.cache.get_many(ids)
        except DocworkersError as exc:
            self._failed("read", exc)
            self._count(misses=len(texts))
            return await self.model.embed(texts)
        size = self.dimension * 4  # a value of another size is not ours: a miss
        found = [value if value is not None and len(value) == size else None for value in found]
        missing: dict[str, int] = {}  # id -> index of the text's first occurrence
        for index, (item_id, value) in enumerate(zip(ids, found, strict=True)):
            if value is None:
                missing.setdefault(item_id, index)
        rows: Vectors | None = None
        if missing:
            rows = await self.model.embed([texts[i] for i in missing.values()])
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        computed = dict(zip(missing, range(len(missing)), strict=True))
        for index, (item_id, value) in enumerate(zip(ids, found, strict=True)):
            if value is not None:
                out[index] = np.frombuffer(value, dtype=np.float32)
            else:
                assert rows is not None
                out[index] = rows[computed[item_id]]
        self._count(hits=len(texts) - len(missing), misses=len(missing))
        if rows is not None:
            try:
                await self.cache.put_many([(item_id, rows[row].astype(np.float32).tobytes())
                                           for item_id, row in computed.items()])
            except DocworkersError as exc:
                self._failed("write", exc)
                return out
        CachedEmbedder._failing = False
        return out

    def _count(self, *, hits: int = 0, misses: int = 0, errors: int = 0) -> None:
        for counts in (self.counts, self.totals):
            counts.hits += hits
            counts.misses += misses
            counts.errors += errors

    def _failed(self, what: str, exc: DocworkersError) -> None:
        self._count(errors=1)
        if not CachedEmbedder._failing:
            CachedEmbedder._failing = True
            log.warning("embedding cache: %s failed, embedding without it until it works "
                        "again: %s", what, exc)

