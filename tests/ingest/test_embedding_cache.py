"""The embedding cache: real Redis, the real model behind a wrapper that counts the texts it
embeds, and real uploads (parser, Chroma) for the re-ingest cases."""

from __future__ import annotations

import logging
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from docworkers.errors import ConfigurationError
from docworkers.ingest.chroma_queries import TEXT_KEY
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.embedding import Embedder, OnnxMiniLMEmbedder, Vectors
from docworkers.ingest.embedding_batcher import BatchingEmbedder
from docworkers.ingest.embedding_cache import (
    CachedEmbedder,
    EmbeddingCache,
    EmbeddingCacheKeys,
    model_identity,
)
from docworkers.ingest.parsing import IsolatedParser
from docworkers.ingest.payload import UploadJobPayload, UploadJobResult
from docworkers.ingest.pipeline import DocumentServices, UploadPipeline
from docworkers.ingest.vector_store import ChromaVectorRepository

TEXTS = [
    "experimental investigation of the aerodynamics of a wing in a slipstream .",
    "Prince Vasili always spoke languidly, like an actor repeating a stale part.",
    "Indicate by check mark whether the registrant is a shell company.",
    "the boundary layer on a flat plate at supersonic speeds, with heat transfer",
]
DOCUMENT = "text/book-war-and-peace-1p.txt"
CHUNK_SIZE = 48  # tokens: a dozen chunks of a one-page text


class CountingEmbedder:
    """The real model, remembering every text it was asked to embed."""

    def __init__(self, inner: Embedder, name: str | None = None) -> None:
        self.inner = inner
        self.model_name = name or inner.model_name
        self.texts: list[str] = []

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return self.inner.embed(texts)


class ReversedWordsEmbedder(CountingEmbedder):
    """Another model: the real one applied to the text's words in reverse order."""

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return self.inner.embed([" ".join(reversed(t.split())) for t in texts])


@pytest.fixture
async def cache(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[EmbeddingCache]:
    shared = EmbeddingCache.from_url(redis_url)
    yield shared
    await shared.aclose()


async def embed_through(cache: EmbeddingCache, model: CountingEmbedder,
                        texts: Sequence[str]) -> tuple[Vectors, CachedEmbedder]:
    async with BatchingEmbedder(model) as batcher:
        front = CachedEmbedder(batcher, cache, model_identity(model))
        return await front.embed(texts), front


async def test_a_cached_vector_equals_the_models(cache: EmbeddingCache,
                                                 embedder: OnnxMiniLMEmbedder) -> None:
    model = CountingEmbedder(embedder)
    texts = [*TEXTS, TEXTS[1]]  # a repeated text is embedded once
    first, front = await embed_through(cache, model, texts)
    assert sorted(model.texts) == sorted(TEXTS)
    assert front.counts.as_dict() == {"hits": 1, "misses": 4, "errors": 0}  # the repeat
    model.texts.clear()
    again, front = await embed_through(cache, model, list(reversed(texts)))
    assert model.texts == []
    assert front.counts.as_dict() == {"hits": 5, "misses": 0, "errors": 0}
    expected = embedder.embed(texts)
    np.testing.assert_allclose(first, expected, atol=1e-6)
    np.testing.assert_array_equal(again, first[::-1])  # rows in the caller's order
    assert await cache.entries() == 4


async def test_two_models_do_not_share_entries(cache: EmbeddingCache,
                                               embedder: OnnxMiniLMEmbedder) -> None:
    plain = CountingEmbedder(embedder)
    other = ReversedWordsEmbedder(embedder, name="reversed-minilm")
    assert model_identity(plain) != model_identity(other)
    plain_vectors, _ = await embed_through(cache, plain, TEXTS)
    other_vectors, front = await embed_through(cache, other, TEXTS)
    assert sorted(other.texts) == sorted(TEXTS) and front.counts.hits == 0
    np.testing.assert_allclose(other_vectors, other.inner.embed(
        [" ".join(reversed(t.split())) for t in TEXTS]), atol=1e-6)
    assert not np.allclose(plain_vectors, other_vectors)
    assert await cache.entries() == 2 * len(TEXTS)


def test_a_local_models_identity_names_its_file(embedder: OnnxMiniLMEmbedder) -> None:
    identity = model_identity(embedder)
    assert embedder.model_path.name in identity and "384" in identity


async def test_the_entry_cap_evicts_the_oldest_entries(redis_url: str,
                                                       clean_redis: redis.Redis) -> None:
    cache = EmbeddingCache.from_url(redis_url, max_entries=5, ttl=3600)
    try:
        vectors = np.random.default_rng(7).random((12, 384), dtype=np.float32)
        ids = [f"{i:032x}" for i in range(12)]
        for begin in range(0, 12, 4):
            await cache.put_many([(ids[i], vectors[i].tobytes()) for i in range(begin, begin + 4)])
        assert await cache.entries() == 5
        keys = EmbeddingCacheKeys()
        stored = list(clean_redis.scan_iter(match=keys.entry_prefix + "*"))
        assert sorted(stored) == sorted(keys.entry(i) for i in ids[7:])
        found = await cache.get_many(ids)
        assert found[:7] == [None] * 7
        assert found[7:] == [vectors[i].tobytes() for i in range(7, 12)]
        assert 0 < clean_redis.pttl(keys.entry(ids[11])) <= 3_600_000
        with pytest.raises(ConfigurationError, match="max_entries"):
            EmbeddingCache(cache.client, max_entries=0)
    finally:
        await cache.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_cache_falls_back_to_the_model(
        embedder: OnnxMiniLMEmbedder, caplog: pytest.LogCaptureFixture) -> None:
    cache = EmbeddingCache.from_url(f"redis://127.0.0.1:{free_port()}/0")
    model = CountingEmbedder(embedder)
    try:
        with caplog.at_level(logging.WARNING, "docworkers.ingest.embedding_cache"):
            vectors, front = await embed_through(cache, model, TEXTS)
            again, front = await embed_through(cache, model, TEXTS)
    finally:
        await cache.aclose()
    np.testing.assert_allclose(vectors, embedder.embed(TEXTS), atol=1e-6)
    np.testing.assert_array_equal(again, vectors)
    assert sorted(model.texts) == sorted(TEXTS + TEXTS)
    assert front.counts.as_dict() == {"hits": 0, "misses": 4, "errors": 1}
    warnings = [r for r in caplog.records if "embedding cache" in r.getMessage()]
    assert len(warnings) == 1, "a failing cache is logged once, not once per request"


async def test_a_failing_write_still_returns_the_vectors(
        cache: EmbeddingCache, clean_redis: redis.Redis, embedder: OnnxMiniLMEmbedder) -> None:
    clean_redis.set(EmbeddingCacheKeys().index, "not a zset")  # the script's ZADD fails
    model = CountingEmbedder(embedder)
    vectors, front = await embed_through(cache, model, TEXTS)
    np.testing.assert_allclose(vectors, embedder.embed(TEXTS), atol=1e-6)
    assert front.counts.as_dict() == {"hits": 0, "misses": 4, "errors": 1}


# --- re-ingesting documents --------------------------------------------------------------------


@dataclass
class Uploads:
    pipeline: UploadPipeline
    model: CountingEmbedder
    folder: Path

    async def ingest(self, path: Path) -> UploadJobResult:
        payload = UploadJobPayload.parse({"filename": path.name, "file_path": str(path),
                                          "collection": "docs", "chunk_size": CHUNK_SIZE})
        self.model.texts.clear()
        return await self.pipeline.run(payload)

    def stored_texts(self, document_id: str) -> list[str]:
        vectors = self.pipeline.vectors
        assert isinstance(vectors, ChromaVectorRepository)
        return [text for _, text, _ in vectors.document_chunks("docs", document_id)]


@pytest.fixture
async def uploads(redis_url: str, clean_redis: redis.Redis, tmp_path: Path,
                  embedder: OnnxMiniLMEmbedder, parser: IsolatedParser,
                  cache: EmbeddingCache) -> AsyncIterator[Uploads]:
    documents = DocumentRepository(aioredis.Redis.from_url(redis_url, decode_responses=True))
    vectors = ChromaVectorRepository.from_path(tmp_path / "chroma")
    model = CountingEmbedder(embedder)
    services = DocumentServices.local(model, parser=parser, cache=cache)
    yield Uploads(UploadPipeline(services, documents, vectors), model, tmp_path)
    await services.batcher.aclose()  # not services.aclose(): the parser is the session's
    vectors.close()
    await documents.client.aclose()


async def test_reuploading_an_unchanged_document_embeds_nothing(uploads: Uploads,
                                                                corpus: Path) -> None:
    path = uploads.folder / "war-and-peace.txt"
    shutil.copy(corpus / DOCUMENT, path)
    first = await uploads.ingest(path)
    assert first.chunk_count >= 8 and len(uploads.model.texts) == first.chunk_count
    assert first.embedding_cache == {"hits": 0, "misses": first.chunk_count, "errors": 0}
    again = await uploads.ingest(path)
    assert uploads.model.texts == []
    assert again.embedding_cache == {"hits": first.chunk_count, "misses": 0, "errors": 0}
    assert again.document_id == first.document_id and again.chunk_count == first.chunk_count


async def test_an_edited_paragraph_embeds_only_the_changed_chunks(uploads: Uploads,
                                                                  corpus: Path) -> None:
    text = (corpus / DOCUMENT).read_text(encoding="utf-8")
    original = uploads.folder / "v1.txt"
    original.write_text(text, encoding="utf-8")
    first = await uploads.ingest(original)
    before = set(uploads.stored_texts(first.document_id))
    assert len(before) == first.chunk_count

    paragraphs = text.split("\n\n")
    middle = max(range(len(paragraphs)), key=lambda i: len(paragraphs[i]))  # the longest
    assert "the" in paragraphs[middle]
    paragraphs[middle] = paragraphs[middle].replace(" the ", " that very ", 2)
    edited = uploads.folder / "v2.txt"
    edited.write_text("\n\n".join(paragraphs), encoding="utf-8")
    second = await uploads.ingest(edited)
    after = uploads.stored_texts(second.document_id)
    changed = [t for t in after if t not in before]

    assert second.document_id != first.document_id
    assert 0 < len(changed) < second.chunk_count
    assert sorted(uploads.model.texts) == sorted(set(changed))
    assert second.embedding_cache == {"hits": second.chunk_count - len(changed),
                                      "misses": len(changed), "errors": 0}


async def test_a_text_repeated_in_a_document_is_embedded_once(uploads: Uploads) -> None:
    paragraphs = [f"Paragraph {n}: the committee met on day {n} and adjourned without a "
                  "decision on the budget of the northern district, after a long debate "
                  "about roads, schools and the new water works." for n in range(40)]
    boilerplate = ("This page is part of the quarterly report of the district council; it "
                   "is printed on every page and says nothing new about roads or schools.")
    path = uploads.folder / "repeats.txt"
    path.write_text("\n\n".join(p + "\n\n" + boilerplate for p in paragraphs),
                    encoding="utf-8")
    result = await uploads.ingest(path)
    stored = uploads.stored_texts(result.document_id)
    assert len(stored) == result.chunk_count > 64 > len(set(stored)) - 40  # two groups
    assert sorted(uploads.model.texts) == sorted(set(stored))
    assert result.embedding_cache == {"hits": 0, "misses": len(set(stored)), "errors": 0}
    vectors = uploads.pipeline.vectors
    assert isinstance(vectors, ChromaVectorRepository)
    ids = vectors.document_chunk_ids("docs", result.document_id)
    collection = vectors._collection("docs", create=False)  # the vectors as stored
    assert collection is not None
    got = collection.get(ids=ids, include=["metadatas", "embeddings"])
    by_text: dict[str, list[np.ndarray]] = {}
    for meta, vector in zip(got["metadatas"] or [], got["embeddings"], strict=True):
        by_text.setdefault(str(meta[TEXT_KEY]), []).append(np.asarray(vector))
    for text, same in by_text.items():
        expected = uploads.model.inner.embed([text])[0]
        for vector in same:
            np.testing.assert_allclose(vector, expected, atol=1e-5)
