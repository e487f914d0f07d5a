"""A worker that lost its lease must change nothing (issue 11, point 1).

Every test plays the same sequence. Attempt 1 of a job runs on worker A up to a point and
freezes there (every call A makes to the queue, heartbeats included, waits: as if its process
were stopped), so its lease runs out on Redis's clock; attempt 2, on worker B, takes the job
over and completes it; attempt 1 resumes and makes its next write. The whole Redis keyspace
(but the live-worker registry and the wake-up list) and every Chroma collection, texts,
metadata and embeddings included, are compared from just before attempt 1 resumes to after
worker A has stopped: nothing may change, and worker A's statistics count nothing.

One test per writer: the job's progress and completion, the document registry (the failure the
catch-all used to record, the completion, a real failure after the takeover), the chunk store
(after a reindex changed the collection), the collection alias (a stale ``vector_reindex``),
and a stale ``document_delete`` racing a re-upload. The last test is the fault run that found
the defect, with two worker processes, SIGSTOP/SIGCONT, a reindex and a search.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from job_waits import until_finished

from docworkers.errors import EmptyDocumentError, LeaseLostError
from docworkers.ingest.aliases import CollectionAliases, resolve_collection
from docworkers.ingest.chroma_server import ChromaServer
from docworkers.ingest.document_repository import DocumentRepository, DocumentStatus
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.embedding_batcher import BatchingEmbedder
from docworkers.ingest.enrich import LocalEnricher
from docworkers.ingest.fencing import AttemptFence
from docworkers.ingest.jobs.common import DocumentJobConfig
from docworkers.ingest.jobs.document_delete import (
    DOCUMENT_DELETE_JOB_TYPE,
    DocumentDeleteWorker,
)
from docworkers.ingest.jobs.vector_reindex import (
    VECTOR_REINDEX_JOB_TYPE,
    VectorReindex,
    VectorReindexPayload,
    VectorReindexWorker,
)
from docworkers.ingest.parsing import IsolatedParser
from docworkers.ingest.payload import UPLOAD_JOB_TYPE, UploadJobPayload, UploadJobResult
from docworkers.ingest.pipeline import DocumentServices, UploadPipeline
from docworkers.ingest.search import SearchService
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.queue import Job, JobStatus, RedisJobRepository, RepositoryConfig
from docworkers.queue.redis.clients import async_client
from docworkers.workers import BaseWorker, JobContext, WorkerConfig

HERE = Path(__file__).parent
LIMIT = 120.0  # seconds any one awaited event may take on a loaded two-core machine
LEASE = 1.0  # attempt 1's lease: it runs out this long after worker A froze
QUEUE = "fenced"
COLLECTION = "fenced-docs"
RIGHTS = "text/eng_spa.txt"  # 379 tokens: 2 chunks by default, more with 64-token sentences
NOTE = "text/fake-text.txt"  # 35 tokens
NEW_CHUNKING = {"collection": COLLECTION, "chunking_strategy": "sentence", "chunk_size": 64}


# -- worker A: frozen at a chosen point --------------------------------------------------------


class FreezingJobs(RedisJobRepository):
    """Worker A's queue. Once A has reported ``freeze_at`` percent on its job, every call A
    makes here waits until ``thawed`` is set, as if A's process were stopped right after that
    report: its heartbeat no longer renews the lease, which runs out on Redis's clock.

    Heartbeats stay held until ``beating`` is set (after attempt 1 ended): the attempt's next
    write comes before its worker's next heartbeat, which would otherwise see the takeover and
    cancel the attempt first (the other order, also harmless, but not what these tests test).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.freeze_at = 101  # percent; 101: never
        self.frozen = asyncio.Event()
        self.thawed = asyncio.Event()
        self.beating = asyncio.Event()

    async def _hold(self) -> None:
        if self.frozen.is_set():
            await self.thawed.wait()

    async def update_progress(self, job_id: str, token: int, progress: int, message: str,
                              lease: float) -> bool:
        await self._hold()
        cancel = await super().update_progress(job_id, token, progress, message, lease)
        if progress >= self.freeze_at and not self.frozen.is_set():
            self.frozen.set()
            await self.thawed.wait()
        return cancel

    async def heartbeat(self, *args: Any, **kwargs: Any) -> tuple[list[str], list[str]]:
        if self.frozen.is_set():
            await self.beating.wait()
        return await super().heartbeat(*args, **kwargs)

    async def owns(self, job_id: str, token: int) -> bool:
        await self._hold()
        return await super().owns(job_id, token)

    async def complete_many(self, *args: Any, **kwargs: Any) -> list[bool]:
        await self._hold()
        return await super().complete_many(*args, **kwargs)

    async def complete_and_reserve(self, *args: Any, **kwargs: Any) -> Any:
        await self._hold()
        return await super().complete_and_reserve(*args, **kwargs)

    async def fail(self, *args: Any, **kwargs: Any) -> Any:
        await self._hold()
        return await super().fail(*args, **kwargs)

    async def release(self, *args: Any, **kwargs: Any) -> int:
        await self._hold()
        return await super().release(*args, **kwargs)


class Recording:
    """Mixin for worker A: ``outcome`` gets what its first attempt's process() ended with
    (the exception, or None when it returned a result)."""

    outcome: asyncio.Future[BaseException | None]

    def _record(self, outcome: BaseException | None) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)

    async def process(self, job: Job, ctx: JobContext) -> Any:
        try:
            result = await super().process(job, ctx)  # type: ignore[misc]
        except BaseException as exc:
            self._record(exc)
            raise
        self._record(None)
        return result


class RecordingUploadWorker(Recording, UploadWorker):
    def __init__(self, config: UploadWorkerConfig) -> None:
        super().__init__(config)
        self.outcome = asyncio.get_running_loop().create_future()


class RecordingReindexWorker(Recording, VectorReindexWorker):
    def __init__(self, config: DocumentJobConfig) -> None:
        super().__init__(config, drain_seconds=0)
        self.outcome = asyncio.get_running_loop().create_future()


class RecordingDeleteWorker(Recording, DocumentDeleteWorker):
    def __init__(self, config: DocumentJobConfig) -> None:
        super().__init__(config)
        self.outcome = asyncio.get_running_loop().create_future()


# -- the world: real Redis, real Chroma, the real model ------------------------------------


@dataclass(slots=True)
class World:
    redis: redis.Redis
    url: str
    documents: DocumentRepository
    vectors: ChromaVectorRepository
    services: DocumentServices
    embedder: Embedder
    corpus: Path
    tmp: Path

    def stored(self, relative: str) -> Path:
        target = self.tmp / "uploads" / Path(relative).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.corpus / relative, target)
        return target

    def upload_payload(self, relative: str) -> dict[str, Any]:
        path = self.stored(relative)
        return {"filename": path.name, "file_path": str(path), "collection": COLLECTION}

    async def ingest(self, relative: str) -> UploadJobResult:
        """An upload outside any job (as the CLI does): not fenced."""
        pipeline = UploadPipeline(self.services, self.documents, self.vectors)
        return await pipeline.run(UploadJobPayload.parse(self.upload_payload(relative)))

    def worker_config(self, name: str, lease: float) -> WorkerConfig:
        # One job at a time: worker A's fetch loop then waits for its only slot while A is
        # frozen, as a stopped process would, instead of reserving the job again itself.
        return WorkerConfig(worker_name=name, lease_timeout=lease, poll_interval=0.05,
                            retry_delay=0.0, concurrency=1)

    def upload_worker(self, name: str, jobs: RedisJobRepository, lease: float,
                      cls: type[UploadWorker] = UploadWorker) -> UploadWorker:
        return cls(UploadWorkerConfig(
            worker=self.worker_config(name, lease), job_repo=jobs, document_repo=self.documents,
            vector_repo=self.vectors, services=self.services))

    def job_config(self, name: str, jobs: RedisJobRepository, lease: float
                   ) -> DocumentJobConfig:
        return DocumentJobConfig(worker=self.worker_config(name, lease), job_repo=jobs,
                                 document_repo=self.documents, vector_repo=self.vectors,
                                 services=self.services)

    def state(self) -> dict[str, Any]:
        """Every key in Redis with its value, and every Chroma collection with every chunk's
        id, text, metadata and embedding. Left out: the live-worker registry (worker A's
        heartbeat publishes its uptime) and the intake and claimed lists (wake-up tokens, which
        an idle worker pops)."""
        keys: dict[str, Any] = {}
        for key in sorted(self.redis.scan_iter("*")):  # type: ignore[type-var]
            name = str(key)
            if ":worker:" in name or name.endswith((":workers", ":intake", ":claimed")):
                continue
            kind = self.redis.type(name)
            if kind == "string":
                keys[name] = self.redis.get(name)
            elif kind == "hash":
                keys[name] = self.redis.hgetall(name)
            elif kind == "zset":
                keys[name] = self.redis.zrange(name, 0, -1, withscores=True)
            elif kind == "set":
                keys[name] = sorted(self.redis.smembers(name))  # type: ignore[arg-type]
            else:
                keys[name] = self.redis.lrange(name, 0, -1)
        chunks: dict[str, Any] = {}
        # The repository has no bulk read with embeddings: read the Chroma client behind it.
        client = self.vectors._client
        for info in self.vectors.list_collections():
            got = client.get_collection(info.name).get(
                include=["documents", "metadatas", "embeddings"])  # type: ignore[list-item]
            rows = zip(got["ids"], got["documents"] or [], got["metadatas"] or [],
                       [list(map(float, e)) for e in got["embeddings"]], strict=True)
            chunks[info.name] = sorted(rows, key=lambda row: row[0])
        return {"redis": keys, "chroma": chunks}


@pytest.fixture
async def world(redis_url: str, clean_redis: redis.Redis, tmp_path: Path, corpus: Path,
                embedder: Embedder, parser: IsolatedParser) -> AsyncIterator[World]:
    documents = DocumentRepository(async_client(redis_url))
    vectors = ChromaVectorRepository.from_path(tmp_path / "chroma")
    services = DocumentServices(parser=parser, embedder=embedder,
                                batcher=BatchingEmbedder(embedder), enricher=LocalEnricher())
    yield World(redis=clean_redis, url=redis_url, documents=documents, vectors=vectors,
                services=services, embedder=embedder, corpus=corpus, tmp=tmp_path)
    await services.batcher.aclose()  # not services.aclose(): the parser is the module's
    vectors.close()
    await documents.client.aclose()


async def within(awaitable: Awaitable[Any], what: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, LIMIT)
    except TimeoutError:
        pytest.fail(f"no {what} within {LIMIT}s")


@dataclass(slots=True)
class Replay:
    """What a fenced-out run produced: attempt 2's finished job, attempt 1's outcome."""

    done: Job
    outcome: BaseException | None


async def fenced_out(world: World, queue: str, job_type: str, payload: dict[str, Any],
                     freeze_at: int,
                     worker_a: Callable[[RedisJobRepository], BaseWorker],
                     worker_b: Callable[[RedisJobRepository], BaseWorker],
                     between: Callable[[], Awaitable[None]] | None = None) -> Replay:
    """The sequence of every test here; asserts that attempt 1's resumption changed nothing
    and counted nothing."""
    config = RepositoryConfig(queue=queue)
    a_jobs = FreezingJobs.from_url(world.url, config)
    a_jobs.freeze_at = freeze_at
    b_jobs = RedisJobRepository.from_url(world.url, config)
    a = worker_a(a_jobs)
    assert isinstance(a, Recording)
    try:
        job_id = await b_jobs.enqueue(job_type, payload)
        await a.start()
        await within(a_jobs.frozen.wait(), f"attempt 1 at {freeze_at} %")
        frozen = await b_jobs.get_job(job_id)
        assert frozen.status == JobStatus.PROCESSING and frozen.token == 1
        assert frozen.progress == freeze_at

        async with worker_b(b_jobs):  # takes the job over once attempt 1's lease ran out
            done = await until_finished(b_jobs, job_id, LIMIT)
        assert done.status == JobStatus.COMPLETED, done.error
        assert done.token == 2 and done.retry_count == 1 and done.progress == 100
        if between is not None:
            await between()

        before = world.state()
        a_jobs.thawed.set()  # attempt 1 resumes and makes its next write
        outcome = await within(a.outcome, "end of attempt 1")
        a_jobs.beating.set()
        await a.stop()
        after = world.state()
        assert after == before
        stats = a.stats()
        assert (stats.jobs_processed, stats.jobs_succeeded, stats.jobs_failed) == (0, 0, 0)
        assert stats.in_flight == 0
        return Replay(done=done, outcome=outcome)
    finally:
        a_jobs.thawed.set()
        a_jobs.beating.set()
        await a.stop()
        await b_jobs.close()
        await a_jobs.close()


def upload_workers(world: World) -> dict[str, Any]:
    return {
        "worker_a": lambda jobs: world.upload_worker("stale", jobs, LEASE, RecordingUploadWorker),
        "worker_b": lambda jobs: world.upload_worker("owner", jobs, 30.0),
    }


async def completed_record(world: World, replay: Replay) -> None:
    record = await world.documents.get(replay.done.result["document_id"])
    assert record is not None and record.status == DocumentStatus.COMPLETED
    assert record.error_code is None and record.job_id == replay.done.id
    assert record.chunk_count == replay.done.result["chunk_count"]


# -- the writers --------------------------------------------------------------------------------


async def test_job_progress_of_a_stale_attempt_is_refused(world: World) -> None:
    """Attempt 1 stops at 30 % (chunking); its next write is progress 50 %."""
    replay = await fenced_out(world, QUEUE, UPLOAD_JOB_TYPE, world.upload_payload(RIGHTS), 30,
                              **upload_workers(world))
    assert isinstance(replay.outcome, LeaseLostError)
    await completed_record(world, replay)


async def test_a_stale_attempt_records_no_document_failure(world: World) -> None:
    """The defect: attempt 1 stops at 50 % (embedding); its next progress raises
    LeaseLostError, which the pipeline's catch-all used to record over the completed document
    as ``failed`` with the code ``LeaseLostError``."""
    replay = await fenced_out(world, QUEUE, UPLOAD_JOB_TYPE, world.upload_payload(RIGHTS), 50,
                              **upload_workers(world))
    assert isinstance(replay.outcome, LeaseLostError)
    await completed_record(world, replay)


async def test_a_stale_completion_of_the_document_record_is_refused(world: World) -> None:
    """Attempt 1 stops at 90 % (finalizing): its next write is the registry's "completed"."""
    replay = await fenced_out(world, QUEUE, UPLOAD_JOB_TYPE, world.upload_payload(RIGHTS), 90,
                              **upload_workers(world))
    assert isinstance(replay.outcome, LeaseLostError)
    await completed_record(world, replay)


async def test_a_real_failure_of_a_stale_attempt_is_not_recorded(world: World) -> None:
    """Attempt 1 stops at 10 % (before parsing). After the takeover its file is emptied, so
    when it resumes, parsing fails with a real, permanent error: neither the document nor the
    job nor the statistics may record it."""
    payload = world.upload_payload(RIGHTS)

    async def empty_the_file() -> None:
        await asyncio.to_thread(Path(payload["file_path"]).write_bytes, b"")

    replay = await fenced_out(world, QUEUE, UPLOAD_JOB_TYPE, payload, 10,
                              **upload_workers(world), between=empty_the_file)
    assert isinstance(replay.outcome, EmptyDocumentError)
    await completed_record(world, replay)


async def test_a_stale_completion_of_the_job_is_refused(world: World) -> None:
    """Attempt 1 stops right after reporting 100 %: it returns its result, and the worker's
    completion is refused by the queue's fencing (and not counted)."""
    replay = await fenced_out(world, QUEUE, UPLOAD_JOB_TYPE, world.upload_payload(RIGHTS), 100,
                              **upload_workers(world))
    assert replay.outcome is None
    await completed_record(world, replay)


async def test_a_stale_attempt_writes_no_chunks(world: World) -> None:
    """Attempt 1 stops at 70 % (its store stage starts). After attempt 2 completed, a reindex
    rebuilds the collection with other chunking and switches its alias. Resumed, attempt 1
    resolves the alias (the new collection) and would overwrite the new version of the document
    with its own chunks and delete the new version's extra ones: its store is refused."""
    payload = world.upload_payload(RIGHTS)

    async def reindex() -> None:
        rebuild = VectorReindex(world.services, world.documents, world.vectors,
                                drain_seconds=0)
        result = await rebuild.run(VectorReindexPayload.parse(NEW_CHUNKING), job_id="rebuild")
        assert result.physical == f"{COLLECTION}--v1" and result.documents == 1

    replay = await fenced_out(world, QUEUE, UPLOAD_JOB_TYPE, payload, 70,
                              **upload_workers(world), between=reindex)
    assert isinstance(replay.outcome, LeaseLostError)
    document_id = replay.done.result["document_id"]
    stored = world.vectors.document_chunks(f"{COLLECTION}--v1", document_id)
    assert len(stored) > replay.done.result["chunk_count"]  # the 64-token version, intact
    assert {meta["strategy"] for _, _, meta in stored} == {"sentence"}
    assert [info.name for info in world.vectors.list_collections()] == [f"{COLLECTION}--v1"]


async def test_a_stale_reindex_attempt_switches_and_drops_nothing(world: World) -> None:
    """A ``vector_reindex`` job: attempt 1 builds its new version and stops at 88 % (its next
    write is the alias switch); attempt 2 builds another version, switches to it and drops the
    older ones. Resumed, attempt 1 owns the same collection lock (it is the same job) but may
    neither switch the alias nor drop the collection searches use, nor release the lock."""
    rights = await world.ingest(RIGHTS)
    note = await world.ingest(NOTE)
    workers = {
        "worker_a": lambda jobs: RecordingReindexWorker(world.job_config("stale", jobs, LEASE)),
        "worker_b": lambda jobs: VectorReindexWorker(world.job_config("owner", jobs, 30.0),
                                                     drain_seconds=0),
    }
    replay = await fenced_out(world, "fenced-reindex", VECTOR_REINDEX_JOB_TYPE, NEW_CHUNKING, 88,
                              **workers)
    assert isinstance(replay.outcome, LeaseLostError)
    live = replay.done.result["physical"]
    assert live == f"{COLLECTION}--v2"  # attempt 1 had reserved v1 for itself
    assert await resolve_collection(world.documents, COLLECTION) == live
    assert [info.name for info in world.vectors.list_collections()] == [live]
    assert world.redis.keys(f"dw:{{documents}}:lock:{COLLECTION}") == []
    search = SearchService(world.embedder, world.vectors, world.documents)
    for result, query in ((rights, "all human beings are born free and equal in dignity"),
                          (note, "hamburgers are delicious and dogs are the best")):
        hits = await search.search(COLLECTION, query, k=1)
        assert hits[0].document_id == result.document_id
        assert hits[0].metadata["strategy"] == "sentence"


async def test_a_stale_delete_does_not_delete_a_reupload(world: World) -> None:
    """A ``document_delete`` job: attempt 1 stops at 30 % (its next write removes the chunks);
    attempt 2 deletes the document; then the same file is uploaded again. Resumed, attempt 1
    must not delete the new upload's chunks or registry entry."""
    first = await world.ingest(RIGHTS)
    workers = {
        "worker_a": lambda jobs: RecordingDeleteWorker(world.job_config("stale", jobs, LEASE)),
        "worker_b": lambda jobs: DocumentDeleteWorker(world.job_config("owner", jobs, 30.0)),
    }
    reuploaded: list[UploadJobResult] = []

    async def upload_again() -> None:
        assert await world.documents.get(first.document_id) is None
        reuploaded.append(await world.ingest(RIGHTS))

    replay = await fenced_out(world, "fenced-delete", DOCUMENT_DELETE_JOB_TYPE,
                              {"document_id": first.document_id}, 30, **workers,
                              between=upload_again)
    assert isinstance(replay.outcome, LeaseLostError)
    assert replay.done.result["deleted"] is True
    assert reuploaded[0].document_id == first.document_id
    record = await world.documents.get(first.document_id)
    assert record is not None and record.status == DocumentStatus.COMPLETED
    assert world.vectors.count_document_chunks(COLLECTION, first.document_id) == \
        reuploaded[0].chunk_count


async def test_an_older_attempt_cannot_use_the_lock_of_a_newer_one(world: World) -> None:
    """The alias scripts one by one: attempt 2 of a job claimed the job's fence and holds the
    collection's lock (owner: the job id, shared by all its attempts). Attempt 1's lock,
    renewal, version reservation, switch and release are all refused, and change nothing."""
    async def owns() -> bool:
        return True

    aliases = CollectionAliases.for_documents(world.documents)
    key = world.documents.keys.fence(QUEUE, "job-1")
    old = AttemptFence(key=key, token=1, job_id="job-1", owns=owns)
    new = AttemptFence(key=key, token=2, job_id="job-1", owns=owns)
    assert await world.documents.claim_fence(old)
    assert await world.documents.claim_fence(new)
    assert not await world.documents.claim_fence(old)  # tokens only move forward
    lock = aliases.lock(COLLECTION, owner="job-1", fence=new)
    await lock.acquire()
    assert await aliases.reserve_version(COLLECTION, 0, owner="job-1", fence=new) == 1
    await aliases.switch(COLLECTION, f"{COLLECTION}--v1", owner="job-1", fence=new)
    before = world.state()
    with pytest.raises(LeaseLostError):
        await aliases.lock(COLLECTION, owner="job-1", fence=old).acquire()
    with pytest.raises(LeaseLostError):
        await aliases.reserve_version(COLLECTION, 0, owner="job-1", fence=old)
    with pytest.raises(LeaseLostError):
        await aliases.switch(COLLECTION, f"{COLLECTION}--v9", owner="job-1", fence=old)
    assert not await aliases.lock(COLLECTION, owner="job-1", fence=old).release()
    assert world.state() == before
    assert await lock.release()


# -- the fault run that found the defect ----------------------------------------------------


class WorkerProcess:
    """``fenced_worker_proc.py NAME [GATE]`` in a subprocess, its output in a log file."""

    def __init__(self, name: str, env: dict[str, str], tmp: Path, gate: str = "") -> None:
        self.log_path = tmp / f"{name}.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "fenced_worker_proc.py"), name,
                 *([gate] if gate else [])],
                env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    async def wait_for(self, text: str) -> None:
        async def poll() -> None:
            while text not in self.output:
                assert self.process.poll() is None, f"exited before {text!r}:\n{self.output}"
                await asyncio.sleep(0.05)

        await within(poll(), f"{text!r} from {self.log_path.name}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # SIGKILL ends a stopped process too
            self.process.wait(30)


@pytest.mark.timeout(600)
async def test_two_worker_processes_sigstop_sigcont_then_reindex_keeps_the_document(
        redis_url: str, clean_redis: redis.Redis, tmp_path: Path, corpus: Path,
        embedder: Embedder, parser: IsolatedParser) -> None:
    """The issue's repro: two workers with a 3 s lease; the first is SIGSTOPped at 50 %, the
    second completes the job, the first gets SIGCONT; the document must still be completed and,
    after ``collections reindex``, still be found by a search for OLAP."""
    chroma = ChromaServer(tmp_path / "chroma-server")
    chroma_url = chroma.start()
    gate = f"fenced:gate:{uuid.uuid4().hex[:8]}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCWORKERS_")}
    env = {**base, "DOCWORKERS_REDIS_URL": redis_url, "DOCWORKERS_CHROMA_URL": chroma_url,
           "DOCWORKERS_QUEUE": QUEUE, "DOCWORKERS_LEASE_TIMEOUT": "3",
           "DOCWORKERS_CONCURRENCY": "1", "DOCWORKERS_RETRY_DELAY": "0",
           "DOCWORKERS_STORAGE_DIR": str(tmp_path / "uploads")}
    jobs = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue=QUEUE))
    documents = DocumentRepository(async_client(redis_url))
    vectors = ChromaVectorRepository.from_url(chroma_url)
    stored = tmp_path / "uploads" / "fr_olap.pdf"
    stored.parent.mkdir()
    shutil.copy(corpus / "pdf" / "fr_olap.pdf", stored)
    processes: list[WorkerProcess] = []
    services = DocumentServices(parser=parser, embedder=embedder,
                                batcher=BatchingEmbedder(embedder), enricher=LocalEnricher())
    try:
        first = WorkerProcess("first", env, tmp_path, gate)
        processes.append(first)
        await first.wait_for("ready")
        job_id = await jobs.enqueue(UPLOAD_JOB_TYPE, {
            "filename": stored.name, "file_path": str(stored), "collection": COLLECTION})
        # The first worker reaches its first embedding call (50 %) and waits at the gate.
        await within(asyncio.to_thread(clean_redis.blpop, [f"{gate}:reached"], 0),
                     "the first worker at its first embedding")
        running = await jobs.get_job(job_id)
        assert running.progress == 50 and running.worker_id and "first" in running.worker_id
        first.process.send_signal(signal.SIGSTOP)

        second = WorkerProcess("second", env, tmp_path)
        processes.append(second)
        await second.wait_for("ready")
        done = await until_finished(jobs, job_id, LIMIT)  # after the first one's lease ran out
        assert done.status == JobStatus.COMPLETED, done.error
        assert done.retry_count == 1 and done.worker_id and "second" in done.worker_id
        document_id = done.result["document_id"]
        record = await documents.get(document_id)
        assert record is not None and record.status == DocumentStatus.COMPLETED

        clean_redis.rpush(gate, "go")  # read by the first worker once it runs again
        first.process.send_signal(signal.SIGCONT)
        # Its next write is refused (its heartbeat waits: see fenced_worker_proc.py).
        await first.wait_for("lease lost")
        assert await documents.get(document_id) == record  # `documents show`: still completed
        final = await jobs.get_job(job_id)
        assert (final.status, final.token, final.result) == (done.status, done.token,
                                                             done.result)
        for process in processes:  # the Chroma server is written by one process now
            process.kill()

        # `collections reindex … --wait`, then `search OLAP`.
        reindex = VectorReindex(services, documents, vectors, drain_seconds=0)
        result = await reindex.run(VectorReindexPayload.parse({"collection": COLLECTION}),
                                   job_id="reindex-after-the-fault")
        assert result.documents == 1 and result.chunks == done.result["chunk_count"]
        hits = await SearchService(embedder, vectors, documents).search(COLLECTION, "OLAP", k=3)
        assert hits and all(hit.document_id == document_id for hit in hits)
        after = await documents.get(document_id)
        assert after is not None and after.status == DocumentStatus.COMPLETED
        assert after.error_code is None
    finally:
        for process in processes:
            process.kill()
        await services.batcher.aclose()
        vectors.close()
        await documents.client.aclose()
        await jobs.close()
        chroma.stop()
