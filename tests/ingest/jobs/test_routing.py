"""Routing: each job type on its own queue of a base queue, the Runtime's workers on those
queues, and reading jobs across them (real Redis, real embedded Chroma)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis

from docworkers.errors import (
    ConfigurationError,
    InvalidPayloadError,
    JobNotFoundError,
    RepositoryConnectionError,
)
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.jobs.bulk_import import BulkImportWorker
from docworkers.ingest.jobs.common import DocumentJobWorker
from docworkers.ingest.jobs.kinds import JOB_TYPES, queue_for
from docworkers.ingest.jobs.payloads import payload_problems, validate_payload
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.queue import JobFilter, JobStatus
from docworkers.queue.redis.keys import validate_queue_name
from docworkers.runtime import Runtime
from docworkers.settings import Settings


class SharedModelRuntime(Runtime):
    """A Runtime on the session's model; ``loaded`` tells whether a worker asked for it."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        super().__init__(settings)
        self._model = embedder
        self.loaded = False

    @property
    def embedder(self) -> Embedder:
        self.loaded = True
        return self._model


@pytest.fixture
async def runtime(redis_url: str, clean_redis: redis.Redis, tmp_path: Path,
                  embedder: Embedder) -> AsyncIterator[SharedModelRuntime]:
    settings = Settings(redis_url=redis_url, queue="rt", chroma_path=str(tmp_path / "chroma"),
                        storage_dir=str(tmp_path / "uploads"))
    async with SharedModelRuntime(settings, embedder) as opened:
        yield opened


def test_uploads_keep_the_base_queue_and_every_other_type_gets_its_own() -> None:
    queues = {job_type: queue_for(job_type, "default") for job_type in JOB_TYPES}
    assert queues[UPLOAD_JOB_TYPE] == "default"
    assert queues["document_delete"] == "default.document_delete"
    assert len(set(queues.values())) == len(JOB_TYPES)
    assert all(validate_queue_name(q) for q in queues.values())
    with pytest.raises(ConfigurationError) as unknown:
        queue_for("resize", "default")
    assert unknown.value.field == "type" and "document_delete" in unknown.value.problem
    with pytest.raises(ConfigurationError) as long:
        queue_for("bulk_import", "q" * 120)
    assert long.value.field == "queue" and "too long" in long.value.problem


@pytest.mark.parametrize(("job_type", "payload", "problems"), [
    ("document_delete", {}, {"document_id": "Field required"}),
    ("document_delete", {"document_id": "a b", "force": True},
     {"document_id": "String should match pattern", "force": "unknown field"}),
    ("vector_reindex", {"collection": "docs--v2"}, {"collection": "physical version"}),
    ("vector_reindex", {"collection": "docs", "chunk_size": 50, "chunk_overlap": 50},
     {"payload": "chunk_overlap (50) must be smaller"}),
    ("metadata_extract", {"document_id": "a", "collection": "docs"},
     {"payload": "exactly one of document_id and collection"}),
    ("collection_delete", ["docs"], {"payload": "must be a JSON object"}),
])
def test_payload_problems_name_each_field(job_type: str, payload: Any,
                                          problems: dict[str, str]) -> None:
    found = payload_problems(job_type, payload)
    assert set(found) == set(problems), found
    assert all(problems[name] in found[name] for name in problems), found
    with pytest.raises(InvalidPayloadError):
        validate_payload(job_type, payload)


def test_a_valid_payload_comes_back_with_its_defaults() -> None:
    assert payload_problems("collection_delete", {"collection": "docs"}) == {}
    data = validate_payload("vector_reindex", {"collection": " docs "})
    assert data["collection"] == "docs" and data["chunking_strategy"] == "recursive"


async def test_runtime_builds_each_worker_on_its_own_queue(runtime: SharedModelRuntime
                                                           ) -> None:
    for job_type in ("document_delete", "collection_delete", "bulk_import"):
        worker = runtime.job_worker(job_type, f"w-{job_type}")
        assert worker.repo.queue == queue_for(job_type, "rt")
        assert worker.config.concurrency == 1 and worker.job_types == {job_type}
    assert not runtime.loaded  # the delete and import workers never touch the model
    bulk = runtime.job_worker("bulk_import", "bulk", base_queue="other")
    assert isinstance(bulk, BulkImportWorker) and bulk.repo.queue == "other.bulk_import"
    assert bulk.bulk_import.uploads.queue == "other"  # children go to that base's uploads
    for job_type in ("metadata_extract", "vector_reindex", UPLOAD_JOB_TYPE):
        worker = runtime.job_worker(job_type, f"w-{job_type}", concurrency=4)
        assert worker.repo.queue == queue_for(job_type, "rt")
        assert worker.config.concurrency == 4 and worker.job_types == {job_type}
    assert runtime.loaded
    reindex = runtime.job_worker("vector_reindex", "r")
    assert isinstance(reindex, DocumentJobWorker) and reindex.job_config.services is not None
    assert runtime.job_worker(UPLOAD_JOB_TYPE, "u").config.concurrency == 3  # the setting


async def test_jobs_are_found_listed_and_counted_across_the_queues(
        runtime: SharedModelRuntime) -> None:
    delete_id = await runtime.submit("collection_delete", {"collection": "docs"}, tags=["x"])
    library_id = await runtime.jobs.enqueue("resize", {"image": "a.png"})
    queues = runtime.queues
    assert (await queues.get_job(delete_id)).queue == "rt.collection_delete"
    assert await runtime.jobs.find_job(delete_id) is None  # not on the base queue
    assert (await queues.owner(library_id)).queue == "rt"
    with pytest.raises(JobNotFoundError):
        await queues.owner("nope")
    listed = await queues.list_jobs(JobFilter(limit=10))
    assert [job.id for job in listed] == [library_id, delete_id]  # newest first
    only = await queues.list_jobs(JobFilter.of(types=["collection_delete"]))
    assert [job.id for job in only] == [delete_id]
    assert [j.id for j in await queues.list_jobs(JobFilter(limit=1, offset=1))] == [delete_id]
    stats = await queues.stats()
    assert stats.queue == "rt" and stats.by_status[JobStatus.QUEUED.value] == 2
    with pytest.raises(InvalidPayloadError, match="collection"):
        await runtime.submit("collection_delete", {"collection": "x"})


async def test_a_failing_queue_read_leaves_no_call_running(runtime: SharedModelRuntime,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """The other queues' calls are cancelled and awaited before the error comes back, so none
    of them uses a connection after the caller has closed the runtime."""
    async def broken() -> None:
        raise RepositoryConnectionError("cannot reach Redis")

    monkeypatch.setattr(runtime.jobs, "stats", broken)
    with pytest.raises(RepositoryConnectionError):
        await runtime.queues.stats()
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
