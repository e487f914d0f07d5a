"""LexicalIndex on a real Redis: exactly-once writes, fencing, drops and BM25 search."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from docworkers.errors import LeaseLostError
from docworkers.ingest.defaults import BM25_B, BM25_K1
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.lexical.index import (
    BATCH_CHUNKS,
    LexicalChunk,
    LexicalConflictError,
    LexicalIndex,
    chunk_record,
)
from docworkers.ingest.lexical.keys import LexicalKeys

COLLECTION = "lexical-test"
OTHER = "lexical-other"
_TEXT = ("river bank money loan interest rate credit market bond share price trade fund "
         "account payment contract clause party notice term period default event")
WORDS = _TEXT.split()


@pytest.fixture
async def documents(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[DocumentRepository]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield DocumentRepository(client, url=redis_url)
    await client.aclose()


@pytest.fixture
def index(documents: DocumentRepository) -> LexicalIndex:
    return LexicalIndex.for_documents(documents)


def chunks(document_id: str, texts: list[str]) -> list[LexicalChunk]:
    return [LexicalChunk(f"{document_id}:{i}", document_id, text) for i, text in enumerate(texts)]


def prose(seed: int, count: int, words: int = 30) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(count)]


def keyspace(client: redis.Redis, *, numbering: bool = True) -> dict[str, Any]:
    """Every key and its whole value; without the last chunk number given if not
    ``numbering`` (it counts every chunk ever indexed, like a sequence)."""
    state: dict[str, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "hash":
            state[key] = client.hgetall(key)
        elif kind == "set":
            state[key] = client.smembers(key)
        elif kind == "string":
            state[key] = client.get(key)
        else:
            raise AssertionError(f"unexpected {kind} key {key}")
        if not numbering and key.endswith(":n"):
            state[key].pop("seq")
    return state


def check_consistent(client: redis.Redis, keys: LexicalKeys) -> dict[str, set[str]]:
    """The postings, terms, stats and documents are exactly what the chunk records say
    (a recount); no other key of the collection exists. Returns {document id: chunk ids}."""
    records = client.hgetall(keys.chunks)
    postings: dict[str, dict[str, str]] = {}
    length = 0
    numbers = {}
    for chunk_id, record in records.items():
        number, *fields = record.split()
        numbers[number] = chunk_id
        size = int(fields[0])
        length += size
        assert size == sum(int(tf) for tf in fields[2::2])
        for term, tf in zip(fields[1::2], fields[2::2], strict=True):
            postings.setdefault(term, {})[number] = str(int(tf) + size * 65536)
    assert client.hgetall(keys.numbers) == numbers
    assert len(numbers) == len(records)
    stored = {key[len(keys.postings_prefix):]: client.hgetall(key)
              for key in client.scan_iter(match=keys.postings_prefix + "*", count=1000)}
    assert stored == postings
    assert client.smembers(keys.terms) == set(postings)
    if records:
        stats = client.hgetall(keys.stats)
        assert int(stats.pop("seq")) >= max(int(number) for number in numbers)
        assert stats == {"chunks": str(len(records)), "length": str(length)}
    else:
        assert not client.exists(keys.stats)
    by_document = {document_id: listed.split()
                   for document_id, listed in client.hgetall(keys.documents).items()}
    listed = [chunk_id for ids in by_document.values() for chunk_id in ids]
    assert sorted(listed) == sorted(records)
    for document_id, ids in by_document.items():
        assert all(chunk_id.rpartition(":")[0] == document_id for chunk_id in ids)
    known = set(keys.fixed())
    for key in client.scan_iter(match=keys.prefix + "*", count=1000):
        assert key in known or key.startswith(keys.postings_prefix), key
    return {document_id: set(ids) for document_id, ids in by_document.items()}


async def test_replace_writes_the_chunks_and_again_changes_nothing(
        index: LexicalIndex, clean_redis: redis.Redis) -> None:
    texts = prose(1, 12)
    await index.replace_document(COLLECTION, "doc-a", chunks("doc-a", texts))
    await index.replace_document(COLLECTION, "doc-b", chunks("doc-b", prose(2, 5)))
    keys = index.keys(COLLECTION)
    layout = check_consistent(clean_redis, keys)
    assert layout == {"doc-a": {f"doc-a:{i}" for i in range(12)},
                      "doc-b": {f"doc-b:{i}" for i in range(5)}}
    before = keyspace(clean_redis)
    await index.replace_document(COLLECTION, "doc-a", chunks("doc-a", texts))
    assert keyspace(clean_redis) == before
    assert await index.chunk_ids(COLLECTION, "doc-a") == layout["doc-a"]
    assert await index.chunk_ids(COLLECTION) == layout["doc-a"] | layout["doc-b"]
    size = await index.size(COLLECTION)
    assert size.chunks == 17 and size.terms == len(clean_redis.smembers(keys.terms))
    assert size.bytes > 0


async def test_a_changed_text_replaces_the_chunk(index: LexicalIndex,
                                                 clean_redis: redis.Redis) -> None:
    await index.replace_document(COLLECTION, "doc", chunks("doc", ["alpha river", "beta bank"]))
    await index.replace_document(COLLECTION, "doc", chunks("doc", ["alpha river", "gamma loan"]))
    check_consistent(clean_redis, index.keys(COLLECTION))
    assert [hit.chunk_id for hit in await index.search(COLLECTION, "gamma", 5)] == ["doc:1"]
    assert await index.search(COLLECTION, "beta", 5) == []


async def test_a_chunk_rewritten_with_the_same_terms_keeps_its_postings(
        index: LexicalIndex, clean_redis: redis.Redis) -> None:
    # The script removes the old postings of a replaced chunk and writes the new ones per term
    # at the end: a term in both (same chunk number) must end up written, with its new tf.
    await index.replace_document(COLLECTION, "doc", chunks("doc", ["alpha river", "beta"]))
    await index.replace_document(COLLECTION, "doc", chunks("doc", ["alpha river river", "beta"]))
    check_consistent(clean_redis, index.keys(COLLECTION))
    assert [hit.chunk_id for hit in await index.search(COLLECTION, "river", 5)] == ["doc:0"]


async def test_a_term_in_more_chunks_of_a_call_than_lua_can_unpack(
        index: LexicalIndex, clean_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    # The postings of a term are written 500 at a time: Lua's unpack refuses ~8,000 values,
    # and a call of 4,200 chunks that all hold "river" gives it 8,400.
    import docworkers.ingest.lexical.index as lexical

    monkeypatch.setattr(lexical, "BATCH_CHUNKS", 5000)
    texts = [f"river {text}" for text in prose(11, 4200, words=3)]
    await index.replace_document(COLLECTION, "doc", chunks("doc", texts))
    keys = index.keys(COLLECTION)
    assert len(check_consistent(clean_redis, keys)["doc"]) == 4200
    assert clean_redis.hlen(keys.postings("river")) == 4200


async def test_smaller_rechunking_removes_the_extra_chunk_ids(
        index: LexicalIndex, clean_redis: redis.Redis) -> None:
    await index.replace_document(COLLECTION, "doc", chunks("doc", prose(3, 9)))
    await index.replace_document(COLLECTION, "doc", chunks("doc", prose(4, 4)))
    assert check_consistent(clean_redis, index.keys(COLLECTION)) == {
        "doc": {f"doc:{i}" for i in range(4)}}
    fresh = keyspace(clean_redis, numbering=False)
    clean_redis.flushdb()
    await index.replace_document(COLLECTION, "doc", chunks("doc", prose(4, 4)))
    assert keyspace(clean_redis, numbering=False) == fresh  # as if written alone


async def test_a_document_of_several_batches(index: LexicalIndex,
                                             clean_redis: redis.Redis) -> None:
    keys = index.keys(COLLECTION)
    big = prose(5, 2 * BATCH_CHUNKS + 50, words=10)
    await index.replace_document(COLLECTION, "doc", chunks("doc", big))
    assert len(check_consistent(clean_redis, keys)["doc"]) == len(big)
    before = keyspace(clean_redis)
    await index.replace_document(COLLECTION, "doc", chunks("doc", big))
    assert keyspace(clean_redis) == before
    smaller = prose(6, BATCH_CHUNKS + 10, words=10)
    await index.replace_document(COLLECTION, "doc", chunks("doc", smaller))
    assert check_consistent(clean_redis, keys) == {
        "doc": {f"doc:{i}" for i in range(len(smaller))}}
    assert not clean_redis.exists(keys.writers)


async def test_a_write_stopped_between_batches_is_completed_by_its_rerun(
        index: LexicalIndex, clean_redis: redis.Redis) -> None:
    """A process stopped after the first batch leaves a consistent (partial) index; the job's
    rerun leaves exactly what one uninterrupted write leaves."""
    keys = index.keys(COLLECTION)
    old, new = prose(7, 2 * BATCH_CHUNKS + 5, words=8), prose(8, BATCH_CHUNKS + 5, words=8)
    await index.replace_document(COLLECTION, "doc", chunks("doc", old))
    real = index._replace
    calls = 0

    async def stop_after_one(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise asyncio.CancelledError  # the process stops here
        return await real(**kwargs)

    index._replace = stop_after_one  # type: ignore[assignment]
    with pytest.raises(asyncio.CancelledError):
        await index.replace_document(COLLECTION, "doc", chunks("doc", new))
    index._replace = real
    check_consistent(clean_redis, keys)
    await index.replace_document(COLLECTION, "doc", chunks("doc", new))
    after_rerun = keyspace(clean_redis, numbering=False)
    clean_redis.flushdb()
    await index.replace_document(COLLECTION, "doc", chunks("doc", new))
    assert keyspace(clean_redis, numbering=False) == after_rerun


async def test_remove_document(index: LexicalIndex, clean_redis: redis.Redis) -> None:
    await index.replace_document(COLLECTION, "doc-b", chunks("doc-b", prose(9, 3)))
    alone = keyspace(clean_redis, numbering=False)
    await index.replace_document(COLLECTION, "doc-a", chunks("doc-a", prose(10, 6)))
    assert await index.remove_document(COLLECTION, "doc-a") == 6
    assert keyspace(clean_redis, numbering=False) == alone
    assert await index.remove_document(COLLECTION, "doc-a") == 0
    assert await index.remove_document(COLLECTION, "doc-b") == 3
    assert keyspace(clean_redis) == {}


async def test_empty_texts_are_chunks_too(index: LexicalIndex, clean_redis: redis.Redis) -> None:
    """The dense side has a chunk for every id: so does the keyword side, even one whose text
    has no term."""
    await index.replace_document(COLLECTION, "doc", chunks("doc", ["the of and", "river"]))
    assert check_consistent(clean_redis, index.keys(COLLECTION)) == {"doc": {"doc:0", "doc:1"}}
    await index.replace_document(COLLECTION, "doc", [])
    assert keyspace(clean_redis) == {}


async def test_drop_collection_leaves_no_key_of_it(index: LexicalIndex,
                                                   clean_redis: redis.Redis) -> None:
    await index.replace_document(OTHER, "doc-c", chunks("doc-c", prose(11, 4)))
    other = keyspace(clean_redis)
    await index.replace_document(COLLECTION, "doc-a", chunks("doc-a", prose(12, 30)))
    await index.replace_document(COLLECTION, "doc-b", chunks("doc-b", ["ZX-4471 " * 3]))
    assert await index.drop_collection(COLLECTION) == 31
    assert [k for k in clean_redis.scan_iter(count=1000) if f":lex:{COLLECTION}:" in k] == []
    assert keyspace(clean_redis) == other
    assert await index.drop_collection(COLLECTION) == 0
    assert await index.search(COLLECTION, "river", 3) == []


async def test_a_rare_code_ranks_first_and_unknown_terms_find_nothing(
        index: LexicalIndex) -> None:
    texts = prose(13, 60)
    texts[17] = texts[17] + " the penalty under ZX-4471 applies"
    texts[3] = texts[3] + " zx 4471"  # the code's parts, apart, elsewhere
    await index.replace_document(COLLECTION, "doc", chunks("doc", texts))
    hits = await index.search(COLLECTION, "ZX-4471 contract", 5)
    assert hits[0].chunk_id == "doc:17" and hits[0].document_id == "doc"
    assert hits[0].rank == 1 and hits[1].rank == 2
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert len(hits) == 5
    assert await index.search(COLLECTION, "xylophone quokka", 5) == []
    assert await index.search(COLLECTION, "the of", 5) == []
    assert await index.search("never-written", "river", 5) == []


async def test_bm25_scores_match_a_hand_computation(index: LexicalIndex) -> None:
    await index.replace_document(COLLECTION, "toy", chunks("toy", [
        "apple banana apple",  # appl 2, banana 1; length 3
        "banana cherry",  # banana 1, cherri 1; length 2
        "cherry cherry cherry date",  # cherri 3, date 1; length 4
    ]))
    n, avgdl, k1, b = 3, 3.0, BM25_K1, BM25_B  # the defaults search uses

    def part(tf: int, df: int, length: int) -> float:
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))

    expected = {"toy:0": part(2, 1, 3), "toy:1": part(1, 2, 2),
                "toy:2": part(3, 2, 4)}  # apple: df 1; cherry: df 2
    hits = await index.search(COLLECTION, "apples cherry", 10)
    assert [hit.chunk_id for hit in hits] == sorted(expected, key=lambda c: -expected[c])
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.chunk_id], rel=1e-12)
    banana = await index.search(COLLECTION, "banana", 10)  # df 2: shorter chunk scores higher
    assert [hit.chunk_id for hit in banana] == ["toy:1", "toy:0"]
    assert banana[0].score == pytest.approx(part(1, 2, 2), rel=1e-12)
    assert len(await index.search(COLLECTION, "apple banana cherry date", 2)) == 2


async def test_weighted_terms_scale_each_terms_contribution(index: LexicalIndex) -> None:
    # An expanded query (pseudo-relevance feedback) weighs its terms: a term's BM25 part is
    # multiplied by its weight, and a weight can turn the order around.
    await index.replace_document(COLLECTION, "toy", chunks("toy", [
        "apple banana apple", "banana cherry", "cherry cherry cherry date"]))
    plain = {hit.chunk_id: hit.score for hit in await index.search(COLLECTION, "apple", 10)}
    assert list(plain) == ["toy:0"]
    doubled = await index.search(COLLECTION, "ignored", 10, terms={"appl": 2.0})
    assert [hit.chunk_id for hit in doubled] == ["toy:0"]
    assert doubled[0].score == pytest.approx(2 * plain["toy:0"], rel=1e-12)
    date = {hit.chunk_id: hit.score for hit in await index.search(COLLECTION, "date", 10)}
    apple_first = await index.search(COLLECTION, "", 10, terms={"appl": 1.0, "date": 0.1})
    date_first = await index.search(COLLECTION, "", 10, terms={"appl": 0.1, "date": 1.0})
    assert [hit.chunk_id for hit in apple_first] == ["toy:0", "toy:2"]
    assert [hit.chunk_id for hit in date_first] == ["toy:2", "toy:0"]
    assert date_first[0].score == pytest.approx(date["toy:2"], rel=1e-12)
    assert await index.search(COLLECTION, "apple", 10, terms={"appl": 0.0}) == []


async def test_term_counts_are_the_stored_terms_of_each_chunk(index: LexicalIndex) -> None:
    await index.replace_document(COLLECTION, "toy", chunks("toy", [
        "apple banana apple", "the ZX-4471 part"]))
    counts = await index.term_counts(COLLECTION, ["toy:1", "toy:0", "toy:9"])
    assert counts == {"toy:0": {"appl": 2, "banana": 1},
                      "toy:1": {"zx": 1, "4471": 1, "zx-4471": 1, "part": 1}}
    assert await index.term_counts(COLLECTION, []) == {}
    assert await index.term_counts("never-written", ["toy:0"]) == {}


async def test_a_fenced_out_attempt_changes_nothing(documents: DocumentRepository,
                                                    index: LexicalIndex,
                                                    clean_redis: redis.Redis) -> None:
    """Attempt 2 of a job claimed the job's fence: attempt 1's writes are refused whole."""
    async def owns() -> bool:
        return True

    key = documents.keys.fence("ingest", "job-1")
    old = AttemptFence(key=key, token=1, job_id="job-1", owns=owns)
    new = AttemptFence(key=key, token=2, job_id="job-1", owns=owns)
    assert await documents.claim_fence(old)
    await index.replace_document(COLLECTION, "doc", chunks("doc", prose(14, 5)), fence=old)
    assert await documents.claim_fence(new)
    await index.replace_document(COLLECTION, "doc", chunks("doc", prose(15, 3)), fence=new)
    before = keyspace(clean_redis)
    with pytest.raises(LeaseLostError):
        await index.replace_document(COLLECTION, "doc", chunks("doc", prose(16, 8)), fence=old)
    with pytest.raises(LeaseLostError):
        await index.replace_document(COLLECTION, "doc",
                                     chunks("doc", prose(16, BATCH_CHUNKS + 1)), fence=old)
    with pytest.raises(LeaseLostError):
        await index.remove_document(COLLECTION, "doc", fence=old)
    assert keyspace(clean_redis) == before
    assert await index.remove_document(COLLECTION, "doc", fence=new) == 3


async def race(redis_url: str, *writes: Callable[[LexicalIndex], Awaitable[None]]
               ) -> list[BaseException | None]:
    """Run each write through its own connection, all at once; what each raised."""
    clients = [aioredis.Redis.from_url(redis_url, decode_responses=True) for _ in writes]
    try:
        results = await asyncio.gather(
            *(write(LexicalIndex(client)) for write, client in zip(writes, clients, strict=True)),
            return_exceptions=True)
    finally:
        for client in clients:
            await client.aclose()
    return [result if isinstance(result, BaseException) else None for result in results]


@pytest.mark.parametrize(("sizes", "rounds"), [((7, 3), 20), ((2 * BATCH_CHUNKS + 3, 30), 6)])
async def test_racing_writes_of_a_document_leave_one_of_them(
        redis_url: str, clean_redis: redis.Redis, index: LexicalIndex, sizes: tuple[int, int],
        rounds: int) -> None:
    """Two writes of one document with different chunkings, at the same time (a document of
    one batch is one atomic call; of several, the newer write stops the older one)."""
    keys = index.keys(COLLECTION)
    for round_ in range(rounds):
        clean_redis.flushdb()
        first = chunks("doc", prose(100 + round_, sizes[0], words=8))
        second = chunks("doc", prose(200 + round_, sizes[1], words=8))
        await index.replace_document(COLLECTION, "doc", chunks("doc", prose(1, 50)))
        outcomes = await race(
            redis_url,
            lambda index, mine=first: index.replace_document(COLLECTION, "doc", mine),
            lambda index, mine=second: index.replace_document(COLLECTION, "doc", mine))
        for outcome in outcomes:
            assert outcome is None or isinstance(outcome, LexicalConflictError), outcome
        assert outcomes.count(None) >= 1
        layout = check_consistent(clean_redis, keys)
        ids = layout["doc"]
        assert ids in ({c.chunk_id for c in first}, {c.chunk_id for c in second})
        records = clean_redis.hgetall(keys.chunks)
        winner = first if len(ids) == len(first) else second
        if None not in outcomes[:1] or None not in outcomes[1:]:  # one was stopped
            assert winner is (first if outcomes[0] is None else second)
        if sizes[0] > BATCH_CHUNKS:  # the winner's texts, all of them
            assert {chunk_id: record.split(" ", 1)[1] for chunk_id, record in records.items()
                    } == {c.chunk_id: chunk_record(c.text)[0] for c in winner}


async def test_a_client_that_does_not_decode_replies(redis_url: str,
                                                     clean_redis: redis.Redis) -> None:
    client = aioredis.Redis.from_url(redis_url)  # replies as bytes
    try:
        index = LexicalIndex(client)
        await index.replace_document(COLLECTION, "doc", chunks("doc", ["river bank", "loan"]))
        await index.replace_document(COLLECTION, "doc", chunks("doc", ["credit"]))  # 2 calls
        assert await index.chunk_ids(COLLECTION) == {"doc:0"}
        assert await index.chunk_ids(COLLECTION, "doc") == {"doc:0"}
        assert [hit.chunk_id for hit in await index.search(COLLECTION, "credit", 3)] == ["doc:0"]
        check_consistent(clean_redis, index.keys(COLLECTION))
        assert await index.drop_collection(COLLECTION) == 1
        assert keyspace(clean_redis) == {}
    finally:
        await client.aclose()


async def test_common_terms_score_the_candidates_of_rare_ones_exactly(
        index: LexicalIndex) -> None:
    texts = [f"river {text}" for text in prose(17, 40)]
    texts[25] += " ZX-4471"
    await index.replace_document(COLLECTION, "doc", chunks("doc", texts))
    exact = await index.search(COLLECTION, "ZX-4471 river", 40, common_share=1.0)
    assert len(exact) == 40 and exact[0].chunk_id == "doc:25"
    bounded = await index.search(COLLECTION, "ZX-4471 river", 40, common_share=0.5,
                                 common_df=0)
    assert bounded == exact[:1]  # the only chunk with a rare term, with its exact score
    alone = await index.search(COLLECTION, "river", 40, common_share=0.5, common_df=0)
    assert alone == await index.search(COLLECTION, "river", 40, common_share=1.0)
    scanned = await index.search(COLLECTION, "river", 40, common_share=0.5, common_df=0,
                                 common_candidates=5)  # HSCAN: a small hash in one page
    assert scanned == alone


async def test_score_gives_each_chunk_what_search_would(index: LexicalIndex) -> None:
    texts = prose(21, 40)
    texts[5] += " the penalty under ZX-4471 applies"
    await index.replace_document(COLLECTION, "doc", chunks("doc", texts))
    terms = {"river": 0.5, "loan": 1.0, "zx-4471": 2.0, "never-indexed": 1.0}
    found = {hit.chunk_id: hit.score for hit in await index.search(COLLECTION, "", 40,
                                                                   terms=terms)}
    ids = [f"doc:{i}" for i in range(40)] + ["doc:99", "other:0"]
    scores = await index.score(COLLECTION, ids, terms)
    assert len(scores) == len(ids)
    for chunk_id, score in zip(ids, scores, strict=True):
        assert score == pytest.approx(found.get(chunk_id, 0.0), rel=1e-12), chunk_id
    assert max(zip(scores, ids, strict=True))[1] == "doc:5"
    assert await index.score(COLLECTION, [], terms) == []
    assert await index.score(COLLECTION, ["doc:1"], {}) == [0.0]
    assert await index.score("never-written", ["doc:1"], terms) == [0.0]
