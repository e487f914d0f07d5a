"""Search modes on real Redis, Chroma and the model: keyword and hybrid search find an exact code
that embeddings miss, filters apply to the keyword side, and every hit says who found it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from docworkers.errors import ConfigurationError
from docworkers.ingest.defaults import RRF_K, SEARCH_CANDIDATES
from docworkers.ingest.payload import UploadJobPayload, UploadJobResult
from docworkers.ingest.pipeline import UploadPipeline
from docworkers.ingest.search import SearchService, fuse
from docworkers.ingest.vector_repository import SearchHit

CODE = "ZX-4471-Q"
PLANTED = {
    "planted.txt": f"The spare part with code {CODE} fits the left hinge of the cabinet door.",
    "planted-twin.txt": "Order form: one brass hinge, quantity three, for the Lyon warehouse.",
}
CORPUS = ["text/fake-text.txt", "text/eng_spa.txt", "pdf/fake-memo.pdf"]


@pytest.fixture
async def world(ingest_env: dict[str, Any], corpus: Path, tmp_path: Path
                ) -> AsyncIterator[dict[str, Any]]:
    """The planted documents and a few corpus files in collection "docs"; {filename: result}."""
    pipeline = UploadPipeline(ingest_env["services"], ingest_env["documents"],
                              ingest_env["vectors"])
    files = [corpus / relative for relative in CORPUS]
    for name, text in PLANTED.items():
        (tmp_path / name).write_text(text + "\n", encoding="utf-8")
        files.append(tmp_path / name)
    uploaded: dict[str, UploadJobResult] = {}
    for path in files:
        uploaded[path.name] = await pipeline.run(UploadJobPayload.parse(
            {"filename": path.name, "file_path": str(path), "collection": "docs"}))
    service = SearchService(ingest_env["embedder"], ingest_env["vectors"],
                            ingest_env["documents"])
    yield {**ingest_env, "uploaded": uploaded, "search": service}


def check_ranks(hits: list[SearchHit]) -> None:
    """found_by names exactly the sides with a rank, in (dense, keyword) order."""
    for hit in hits:
        sides = (("dense", hit.dense_rank), ("keyword", hit.keyword_rank))
        assert hit.found_by == tuple(side for side, rank in sides if rank is not None), hit


async def test_keyword_and_hybrid_find_the_planted_code_first(world: dict[str, Any]) -> None:
    search: SearchService = world["search"]
    planted = world["uploaded"]["planted.txt"].document_id
    keyword = await search.search("docs", CODE, k=3, mode="keyword")
    assert [hit.document_id for hit in keyword] == [planted]  # no other chunk has the code
    assert keyword[0].found_by == ("keyword",) and keyword[0].keyword_rank == 1
    assert keyword[0].dense_rank is None and keyword[0].score > 0  # BM25
    assert CODE in keyword[0].text and keyword[0].filename == "planted.txt"
    assert keyword[0].metadata["document_id"] == planted

    hybrid = await search.search("docs", CODE, k=3)  # hybrid is the default
    assert hybrid[0].document_id == planted and hybrid[0].keyword_rank == 1
    assert "keyword" in hybrid[0].found_by
    check_ranks(hybrid)
    assert await search.search("docs", "qqqzzz-unknownword", k=3, mode="keyword") == []


async def test_hybrid_fuses_both_sides_candidates_by_rrf(world: dict[str, Any]) -> None:
    search: SearchService = world["search"]
    query = "hinge of the cabinet door"
    hybrid = await search.search("docs", query, k=5, mode="hybrid")
    dense = await search.search("docs", query, k=SEARCH_CANDIDATES, mode="dense")
    keyword = await search.search("docs", query, k=SEARCH_CANDIDATES, mode="keyword")
    dense_ranks = {hit.chunk_id: rank for rank, hit in enumerate(dense, start=1)}
    keyword_ranks = {hit.chunk_id: rank for rank, hit in enumerate(keyword, start=1)}
    assert len(keyword) >= 2  # both planted documents mention a hinge
    assert len(hybrid) == 5
    check_ranks(hybrid)
    for hit in hybrid:
        assert hit.dense_rank == dense_ranks.get(hit.chunk_id)
        assert hit.keyword_rank == keyword_ranks.get(hit.chunk_id)
        expected = sum(1 / (RRF_K + rank) for rank in (hit.dense_rank, hit.keyword_rank)
                       if rank is not None)
        assert hit.score == pytest.approx(expected)
    assert [hit.score for hit in hybrid] == sorted((hit.score for hit in hybrid), reverse=True)
    assert hybrid[0].found_by == ("dense", "keyword")  # found by both beats found by one

    assert [(hit.dense_rank, hit.keyword_rank) for hit in dense[:5]] == [
        (rank, None) for rank in range(1, 6)]
    assert all(hit.found_by == ("dense",) for hit in dense)
    assert all(-1 <= hit.score <= 1 for hit in dense)  # cosine similarity


async def test_filters_apply_to_the_keyword_side(world: dict[str, Any]) -> None:
    search: SearchService = world["search"]
    twin = world["uploaded"]["planted-twin.txt"].document_id
    unfiltered = await search.search("docs", "hinge", k=5, mode="keyword")
    assert {hit.filename for hit in unfiltered} == {"planted.txt", "planted-twin.txt"}

    only_twin = {"filename": "planted-twin.txt"}
    filtered = await search.search("docs", "hinge", k=5, filters=only_twin, mode="keyword")
    assert [hit.document_id for hit in filtered] == [twin]
    assert filtered[0].keyword_rank == 1  # ranks count the candidates the filter admits
    assert await search.search("docs", CODE, k=5, filters=only_twin, mode="keyword") == []

    hybrid = await search.search("docs", CODE, k=5, filters=only_twin)
    assert hybrid and {hit.filename for hit in hybrid} == {"planted-twin.txt"}
    assert all(hit.keyword_rank is None for hit in hybrid)  # the code is not in the twin
    check_ranks(hybrid)


async def test_mode_is_checked_before_anything_is_asked(world: dict[str, Any]) -> None:
    search: SearchService = world["search"]
    for bad in ("sparse", "HYBRID", ""):
        with pytest.raises(ConfigurationError) as caught:
            await search.search("docs", CODE, mode=bad)
        assert caught.value.field == "mode" and "hybrid, dense, keyword" in str(caught.value)

    # Without the registry there is no keyword index: dense by default, keyword refused.
    plain = SearchService(world["embedder"], world["vectors"])
    hits = await plain.search("docs", CODE, k=2)
    assert hits and all(hit.found_by == ("dense",) for hit in hits)
    with pytest.raises(ConfigurationError) as caught:
        await plain.search("docs", CODE, mode="keyword")
    assert caught.value.field == "mode"


async def test_hybrid_puts_the_chunk_with_an_exact_code_first(world: dict[str, Any]) -> None:
    # Both sides like the twin's words (hinge, brass, quantity, Lyon warehouse); only the
    # planted chunk has the code, which the question names exactly.
    search: SearchService = world["search"]
    planted = world["uploaded"]["planted.txt"].document_id
    question = (f"order form for a brass hinge, quantity three, Lyon warehouse: which part is "
                f"{CODE}?")
    hits = await search.search("docs", question, k=3)
    assert hits[0].document_id == planted and "keyword" in hits[0].found_by
    unpinned = await search.search("docs", question.replace(CODE, "it"), k=3)
    assert unpinned[0].filename == "planted-twin.txt"  # without the code, the twin wins


def test_fuse_puts_the_exact_matches_first_in_fused_order() -> None:
    def hit(chunk_id: str) -> SearchHit:
        return SearchHit.stored(chunk_id, "text", {}, 0.0)

    dense = [hit("d:0"), hit("d:1"), hit("d:2")]
    keyword = [hit("d:1"), hit("d:3")]
    plain = [h.chunk_id for h in fuse(dense, keyword, 4)]
    assert plain == ["d:1", "d:0", "d:3", "d:2"]  # RRF: d:1 found by both sides
    pinned = fuse(dense, keyword, 4, first={"d:3", "d:2"})
    assert [h.chunk_id for h in pinned] == ["d:3", "d:2", "d:1", "d:0"]
    assert pinned[0].keyword_rank == 2 and pinned[0].dense_rank is None
