"""The keyword index follows the vector store through every job that changes chunks: after each,
both sides hold exactly the same chunk ids, compared one by one."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from jobs_support import MEMO, NOTE, RIGHTS, JobsEnv

from docworkers.ingest.aliases import resolve_collection
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.jobs.collection_delete import delete_collection
from docworkers.ingest.jobs.document_delete import delete_document
from docworkers.ingest.jobs.vector_reindex import VectorReindex, VectorReindexPayload
from docworkers.ingest.lexical.index import LexicalChunk, LexicalIndex
from docworkers.ingest.payload import UploadJobPayload
from docworkers.ingest.pipeline import UploadPipeline

LEXICAL_KEYS = "dw:{documents}:lex:*"


def keys(env: JobsEnv, pattern: str = LEXICAL_KEYS) -> list[str]:
    return sorted(env.redis.keys(pattern))  # type: ignore[arg-type]


async def assert_same_chunks(env: JobsEnv, physical: str, document_ids: list[str]) -> set[str]:
    """Both sides of ``physical`` hold the chunks of ``document_ids`` and nothing else, id for
    id; returns the ids."""
    keywords = LexicalIndex.for_documents(env.documents)
    everything: set[str] = set()
    for document_id in document_ids:
        dense = env.vectors.document_chunk_ids(physical, document_id)
        assert len(dense) == len(set(dense))
        assert await keywords.chunk_ids(physical, document_id) == set(dense), document_id
        everything |= set(dense)
    counts = {info.name: info.count for info in env.vectors.list_collections()}
    assert counts.get(physical, 0) == len(everything)  # no chunk of another document
    assert await keywords.chunk_ids(physical) == everything
    return everything


async def test_upload_reupload_rechunk_and_delete_keep_both_sides_equal(env: JobsEnv) -> None:
    rights = await env.ingest(RIGHTS)
    note = await env.ingest(NOTE)
    ids = await assert_same_chunks(env, "docs", [rights.document_id, note.document_id])
    assert len(ids) == rights.chunk_count + note.chunk_count

    smaller = await env.ingest(RIGHTS, chunk_size=64)  # same document, more, shorter chunks
    assert smaller.document_id == rights.document_id and smaller.chunk_count > rights.chunk_count
    await assert_same_chunks(env, "docs", [rights.document_id, note.document_id])

    larger = await env.ingest(RIGHTS, chunk_size=128)  # fewer again: the surplus goes
    assert smaller.chunk_count > larger.chunk_count
    ids = await assert_same_chunks(env, "docs", [rights.document_id, note.document_id])
    assert {id_ for id_ in ids if id_.startswith(rights.document_id)} == {
        f"{rights.document_id}:{i}" for i in range(larger.chunk_count)}

    deleted = await delete_document(env.documents, env.vectors, note.document_id)
    assert deleted.deleted and deleted.chunks_deleted == note.chunk_count
    await assert_same_chunks(env, "docs", [rights.document_id])
    keywords = LexicalIndex.for_documents(env.documents)
    assert await keywords.chunk_ids("docs", note.document_id) == set()
    assert await keywords.search("docs", "hamburgers delicious", 5) == []


async def test_collection_delete_leaves_no_keyword_key(env: JobsEnv) -> None:
    memo = await env.ingest(MEMO)
    await env.ingest(NOTE, collection="other")
    await assert_same_chunks(env, "docs", [memo.document_id])
    assert keys(env, "dw:{documents}:lex:docs:*")

    result = await delete_collection(env.documents, env.vectors, "docs", owner="delete-1")
    assert result.dropped == ["docs"]
    assert keys(env, "dw:{documents}:lex:docs:*") == []
    assert keys(env)  # the other collection's index is untouched

    await delete_collection(env.documents, env.vectors, "other", owner="delete-2")
    assert keys(env) == []


async def test_reindex_builds_the_keyword_side_of_the_new_version(env: JobsEnv) -> None:
    rights = await env.ingest(RIGHTS)
    memo = await env.ingest(MEMO)
    note = await env.ingest(NOTE)
    deleted_meanwhile: list[str] = []

    async def delete_one_while_building(percent: int, message: str) -> None:
        if message.startswith("re-embedding") and not deleted_meanwhile:
            await delete_document(env.documents, env.vectors, note.document_id)
            deleted_meanwhile.append(note.document_id)

    reindex = VectorReindex(env.services, env.documents, env.vectors, drain_seconds=0.1)
    result = await reindex.run(VectorReindexPayload.parse(
        {"collection": "docs", "chunking_strategy": "sentence", "chunk_size": 64}),
        job_id="reindex-1", progress=delete_one_while_building)

    assert deleted_meanwhile and result.physical == "docs--v1"
    assert await resolve_collection(env.documents, "docs") == "docs--v1"
    ids = await assert_same_chunks(env, "docs--v1", [rights.document_id, memo.document_id])
    assert len(ids) == result.chunks > rights.chunk_count + memo.chunk_count
    # the old version is gone from both sides, keys and all
    assert env.collections() == ["docs--v1"]
    assert keys(env, "dw:{documents}:lex:docs:*") == []
    assert {key.split(":")[3] for key in keys(env)} == {"docs--v1"}


class ProcessDied(BaseException):
    """Stands for a SIGKILL: nothing catches it, nothing is recorded."""


class DiesBeforeKeywords:
    """The keyword index of a process that dies right after its vector write, before the
    keyword write: the one moment a real SIGKILL cannot be aimed at from outside."""

    async def replace_document(self, collection: str, document_id: str,
                               chunks: Sequence[LexicalChunk], *,
                               fence: AttemptFence | None = None) -> None:
        raise ProcessDied

    async def remove_document(self, collection: str, document_id: str, *,
                              fence: AttemptFence | None = None) -> int:
        raise ProcessDied


async def test_death_between_the_vector_and_keyword_writes_is_repaired_by_the_rerun(
        env: JobsEnv) -> None:
    first = await env.ingest(RIGHTS, chunk_size=64)
    path = env.stored(RIGHTS)
    payload = UploadJobPayload.parse({"filename": path.name, "file_path": str(path),
                                      "collection": "docs", "chunk_size": 128})
    dying = UploadPipeline(env.services, env.documents, env.vectors, DiesBeforeKeywords())
    with pytest.raises(ProcessDied):
        await dying.run(payload)
    keywords = LexicalIndex.for_documents(env.documents)
    dense = env.vectors.document_chunk_ids("docs", first.document_id)
    assert len(dense) < first.chunk_count  # the vectors were re-chunked, the keywords not
    assert len(await keywords.chunk_ids("docs", first.document_id)) == first.chunk_count

    rerun = await UploadPipeline(env.services, env.documents, env.vectors).run(payload)
    assert rerun.document_id == first.document_id and rerun.chunk_count == len(dense)
    ids = await assert_same_chunks(env, "docs", [first.document_id])
    assert ids == {f"{first.document_id}:{i}" for i in range(rerun.chunk_count)}
