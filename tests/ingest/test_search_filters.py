"""The search filter language: what it accepts, what it refuses (naming the field, quoting
nothing long), how each operator filters real Chroma, and that neither a refused filter nor a
request the store rejects ever counts toward the vector store's circuit breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from docworkers.errors import ConfigurationError, InputRejectedError, VectorStoreError
from docworkers.ingest.document import Chunk
from docworkers.ingest.search import SearchService
from docworkers.ingest.search_filters import Condition, Operator, SearchFilter
from docworkers.ingest.vector_repository import vector_store_breaker
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.workers.circuit_breaker import CircuitBreaker, CircuitState

COLLECTION = "filters"
DIM = 8


def test_accepted_forms() -> None:
    parsed = SearchFilter.parse({
        "filename": "a.pdf",
        "page_start": {"$gte": 2, "$lte": 5},
        "language": {"$in": ["en", "de"]},
        "chunk_index": {"$nin": [0]},
    })
    assert parsed.conditions == (
        Condition("filename", Operator.EQ, "a.pdf"),
        Condition("page_start", Operator.GTE, 2),
        Condition("page_start", Operator.LTE, 5),
        Condition("language", Operator.IN, ("en", "de")),
        Condition("chunk_index", Operator.NIN, (0,)),
    )
    assert not SearchFilter.parse(None) and not SearchFilter.parse({})
    assert SearchFilter.parse({"page_start": -(2**63) + 1}).conditions[0].value == -(2**63) + 1


# Each case: the filter, the field the error names, a word of its message. The first five
# are what an outside fault run sent; each made Chroma fail, which counted as an outage.
REFUSED: list[tuple[Any, str, str]] = [
    ({"page_start": {"$in": []}}, "filters.page_start", "at least one value"),
    ({"page_start": {"$in": [1, "a"]}}, "filters.page_start", "whole numbers, not text"),
    ({"page_start": float("nan")}, "filters.page_start", "NaN or infinity"),
    ({"page_start": {"$gt": float("inf")}}, "filters.page_start", "NaN or infinity"),
    ({"page_start": {"$in": [1.5, 2]}}, "filters.page_start", "decimal number"),
    ({"page_start": 2.0}, "filters.page_start", "decimal number"),
    ({"page_start": True}, "filters.page_start", "true/false"),
    ({"page_start": None}, "filters.page_start", "null"),
    ({"page_start": [1, 2]}, "filters.page_start", "a list"),
    ({"page_start": {}}, "filters.page_start", "at least one operator"),
    ({"page_start": {"$regex": "."}}, "filters.page_start", "unknown operator"),
    ({"page_start": 2**63}, "filters.page_start", "out of range"),
    ({"filename": {"$gt": "a"}}, "filters.filename", "compares numbers"),
    ({"filename": 3}, "filters.filename", "compare with text"),
    ({"filename": {"$in": "a.pdf"}}, "filters.filename", "list of values"),
    ({"filename": {"$in": ["a"] * 101}}, "filters.filename", "at most 100"),
    ({"filename": "x" * 1001}, "filters.filename", "longer than 1000"),
    ({"$or": [{"filename": "a"}]}, "filters.$or", "inside a field"),
    ({"kind": "pdf"}, "filters.kind", "unknown field"),
    (["filename"], "filters", "object"),
]


@pytest.mark.parametrize(("raw", "field", "words"), REFUSED)
def test_refused_filters_name_the_field(raw: Any, field: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        SearchFilter.parse(raw)
    assert info.value.field == field
    assert words in info.value.problem, info.value.problem


def test_errors_quote_nothing_long() -> None:
    for raw in ({"x" * 5000: 1}, {"page_start": {"$" + "y" * 5000: 1}},
                {"filename": "z" * 100_000}):
        with pytest.raises(ConfigurationError) as info:
            SearchFilter.parse(raw)
        assert len(str(info.value)) < 600, str(info.value)[:200]


# -- on real Chroma -----------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[ChromaVectorRepository]:
    with ChromaVectorRepository.from_path(tmp_path / "chroma") as repository:
        yield repository


def store(repo: ChromaVectorRepository, document_id: str, pages: list[int],
          **metadata: Any) -> None:
    chunks = [Chunk(index=i, text=f"{document_id} chunk {i}", start_char=0, end_char=1,
                    token_count=1, page_start=page, page_end=page)
              for i, page in enumerate(pages)]
    rng = np.random.default_rng(len(document_id))
    repo.replace_document(COLLECTION, document_id, chunks, rng.random((len(pages), DIM)),
                          [metadata] * len(pages))


def found(repo: ChromaVectorRepository, raw: dict[str, Any]) -> set[str]:
    hits = repo.search(COLLECTION, np.ones(DIM), k=50, where=SearchFilter.parse(raw))
    return {h.chunk_id for h in hits}


def test_every_operator_filters_real_chroma(repo: ChromaVectorRepository) -> None:
    store(repo, "memo", [1, 2, 3], filename="memo.pdf", language="en")
    store(repo, "note", [1, 1], filename="note.md", language="de")
    everything = {"memo:0", "memo:1", "memo:2", "note:0", "note:1"}
    assert found(repo, {}) == everything
    assert found(repo, {"filename": "note.md"}) == {"note:0", "note:1"}
    assert found(repo, {"filename": {"$eq": "memo.pdf"}}) == {"memo:0", "memo:1", "memo:2"}
    assert found(repo, {"language": {"$ne": "en"}}) == {"note:0", "note:1"}
    assert found(repo, {"page_start": {"$gt": 1}}) == {"memo:1", "memo:2"}
    assert found(repo, {"page_start": {"$gte": 2}}) == {"memo:1", "memo:2"}
    assert found(repo, {"page_start": {"$lt": 2}}) == {"memo:0", "note:0", "note:1"}
    assert found(repo, {"page_end": {"$lte": 1}}) == {"memo:0", "note:0", "note:1"}
    assert found(repo, {"page_start": {"$in": [2, 3]}}) == {"memo:1", "memo:2"}
    assert found(repo, {"document_id": {"$nin": ["memo"]}}) == {"note:0", "note:1"}
    assert found(repo, {"page_start": {"$gte": 2, "$lte": 2}}) == {"memo:1"}
    assert found(repo, {"filename": "memo.pdf", "chunk_index": {"$in": [0, 2]},
                        "language": "en"}) == {"memo:0", "memo:2"}
    assert found(repo, {"filename": "memo.pdf", "language": "de"}) == set()


# -- client mistakes never count toward the breaker -----------------------------------------


@pytest.mark.usefixtures("isolated_breakers")
def test_rejected_input_and_bad_arguments_never_open_the_breaker(
        repo: ChromaVectorRepository, tmp_path: Path) -> None:
    store(repo, "memo", [1, 2])
    breaker = CircuitBreaker("test-store-input", failure_threshold=2, reset_timeout=60.0)
    for _ in range(5):
        # Chroma itself refuses this (an empty metadata key): an InputRejectedError, which
        # says nothing about where Chroma runs.
        with pytest.raises(InputRejectedError) as rejected:
            breaker.call_sync(repo.update_chunk_metadata, COLLECTION, ["memo:0"], [{"": "x"}])
        assert str(tmp_path) not in str(rejected.value)
        assert not isinstance(rejected.value, VectorStoreError)
        assert not rejected.value.retryable
        with pytest.raises(ConfigurationError):  # a name Chroma could never hold
            breaker.call_sync(repo.search, "a..b", np.ones(DIM))
    assert breaker.state is CircuitState.CLOSED
    repo.close()  # an outage: these count
    for _ in range(2):
        with pytest.raises(VectorStoreError):
            breaker.call_sync(repo.search, COLLECTION, np.ones(DIM))
    assert breaker.state is CircuitState.OPEN


@pytest.mark.usefixtures("isolated_breakers")
async def test_search_service_refuses_a_bad_filter_before_the_store(
        repo: ChromaVectorRepository, embedder: Any) -> None:
    texts = ["Gliders ride rising air.", "Tax returns are due in April."]
    chunks = [Chunk(index=i, text=text, start_char=0, end_char=len(text), token_count=5,
                    page_start=i + 1, page_end=i + 1) for i, text in enumerate(texts)]
    repo.replace_document("real", "memo", chunks, embedder.embed(texts), [{}, {}])
    service = SearchService(embedder, repo)
    breaker = vector_store_breaker()  # process-wide: compare with its state before
    before = breaker.stats()
    for _ in range(breaker.failure_threshold + 2):
        with pytest.raises(ConfigurationError) as info:
            await service.search("real", "gliders", 5, {"page_start": {"$in": []}})
        assert info.value.field == "filters.page_start"
    after = breaker.stats()
    assert after.state is CircuitState.CLOSED
    assert (after.failures, after.opened_count, after.last_failure) == \
        (before.failures, before.opened_count, before.last_failure)
    hits = await asyncio.wait_for(service.search("real", "taxes", 5, {"page_start": 2}), 60)
    assert [h.chunk_id for h in hits] == ["memo:1"]
