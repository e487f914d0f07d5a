"""Search modes on real Redis, Chroma and the model: keyword and hybrid search find an exact code
that embeddings miss, filters apply to the keyword side, and every hit says who found it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from docworkers.errors import ConfigurationError
from docworkers.ingest.defaults import (
    FEEDBACK_CHUNKS,
    FEEDBACK_ORIGINAL_WEIGHT,
    FEEDBACK_TERMS,
    HYBRID_DENSE_WEIGHT,
    RRF_K,
    SEARCH_CANDIDATES,
)
from docworkers.ingest.fusion import rrf, zscore_fusion
from docworkers.ingest.lexical.feedback import rm3
from docworkers.ingest.lexical.tokens import tokenize
from docworkers.ingest.payload import UploadJobPayload, UploadJobResult
from docworkers.ingest.pipeline import UploadPipeline
from docworkers.ingest.search import SearchService, best_per_document, fuse
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


async def test_hybrid_rescores_both_sides_candidates_with_the_expanded_query(
        world: dict[str, Any]) -> None:
    # Recomputed here from the two plain sides: the first fusion (RRF) picks the feedback
    # chunks among those the keyword side found, their stored terms expand the keyword query
    # (RM3); every candidate of either side gets its cosine and its BM25 for the expanded
    # query, and the answer is their z-score fusion. Ranks and found_by are the plain sides'
    # candidate lists.
    search: SearchService = world["search"]
    assert search.keywords is not None
    query = "hinge of the cabinet door"
    hybrid = await search.search("docs", query, k=5, mode="hybrid")
    dense = await search.search("docs", query, k=SEARCH_CANDIDATES, mode="dense")
    keyword = await search.search("docs", query, k=SEARCH_CANDIDATES, mode="keyword")
    assert len(keyword) >= 2  # both planted documents mention a hinge
    first = rrf([[hit.chunk_id for hit in dense], [hit.chunk_id for hit in keyword]], k=RRF_K)
    matched = {hit.chunk_id for hit in keyword}
    feedback_ids = [id_ for id_, _ in first if id_ in matched][:FEEDBACK_CHUNKS]
    # a chunk only the dense side found is among the first ranking's best, and left out
    assert [id_ for id_, _ in first[:FEEDBACK_CHUNKS]] != feedback_ids
    counts = await search.keywords.term_counts("docs", feedback_ids)
    assert set(counts) == set(feedback_ids)
    terms = rm3(tokenize(query), [counts[id_] for id_ in feedback_ids],
                terms=FEEDBACK_TERMS, original_weight=FEEDBACK_ORIGINAL_WEIGHT)
    assert len(terms) > len(set(tokenize(query)))  # expanded
    union = list(dict.fromkeys([hit.chunk_id for hit in dense + keyword]))
    rescored = dict(zip(union, await search.keywords.score("docs", union, terms), strict=True))
    keyword_ids = {hit.chunk_id for hit in keyword}
    assert any(rescored[id_] > 0 for id_ in union if id_ not in keyword_ids)  # new words match
    vector = world["embedder"].embed([query])[0]
    cosine = world["vectors"].similarities("docs", union, vector)
    for hit in dense:
        assert cosine[hit.chunk_id] == pytest.approx(hit.score, abs=1e-5)
    fused = zscore_fusion(
        [sorted(cosine.items(), key=lambda pair: -pair[1]),
         sorted(rescored.items(), key=lambda pair: -pair[1])],
        weights=(HYBRID_DENSE_WEIGHT, 1 - HYBRID_DENSE_WEIGHT))
    assert [hit.chunk_id for hit in hybrid] == [id_ for id_, _ in fused[:5]]
    dense_ranks = {hit.chunk_id: rank for rank, hit in enumerate(dense, start=1)}
    keyword_ranks = {hit.chunk_id: rank for rank, hit in enumerate(keyword, start=1)}
    check_ranks(hybrid)
    for hit, (_, score) in zip(hybrid, fused, strict=False):
        assert hit.dense_rank == dense_ranks.get(hit.chunk_id)
        assert hit.keyword_rank == keyword_ranks.get(hit.chunk_id)
        assert hit.score == pytest.approx(score, abs=1e-4)
        assert hit.text  # text and metadata from the vector store, whichever side found it
    assert hybrid[0].found_by == ("dense", "keyword")

    assert [(hit.dense_rank, hit.keyword_rank) for hit in dense[:5]] == [
        (rank, None) for rank in range(1, 6)]
    assert all(hit.found_by == ("dense",) for hit in dense)
    assert all(-1 <= hit.score <= 1 for hit in dense)  # cosine similarity


async def test_group_by_document_returns_each_document_once_by_its_best_chunk(
        world: dict[str, Any]) -> None:
    search: SearchService = world["search"]
    query = "human rights, dogs and the brass hinge of the memo"
    for mode in ("dense", "keyword", "hybrid"):
        chunks = await search.search("docs", query, k=200, mode=mode)
        documents = {hit.document_id for hit in chunks}
        assert len(chunks) > len(documents) >= 3, mode  # some documents have several chunks
        grouped = await search.search("docs", query, k=3, mode=mode, group_by_document=True)
        assert len(grouped) == 3 and len({hit.document_id for hit in grouped}) == 3, mode
        if mode != "hybrid":  # one side's order does not depend on k: MaxP of its ranking
            assert grouped == best_per_document(chunks)[:3]
        every = await search.search("docs", query, k=200, mode=mode, group_by_document=True)
        assert {hit.document_id for hit in every} == documents, mode
        check_ranks(every)


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
    dense, keyword = ["d:0", "d:1", "d:2"], ["d:1", "d:3"]
    scores = {"dense_scores": {"d:0": 0.9, "d:1": 0.8, "d:2": 0.7},
              "keyword_scores": {"d:1": 5.0, "d:3": 2.0}}
    plain = [id_ for id_, _ in fuse(dense, keyword, 4, **scores)]
    assert plain == ["d:1", "d:0", "d:3", "d:2"]  # d:1 high on both sides
    pinned = fuse(dense, keyword, 4, **scores, first={"d:3", "d:2"})
    assert [id_ for id_, _ in pinned] == ["d:3", "d:2", "d:1", "d:0"]
    assert fuse(dense, keyword, 2, **scores) == fuse(dense, keyword, 4, **scores)[:2]
