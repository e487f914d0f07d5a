"""Shared fixtures: a real Redis server for the whole session, an empty keyspace per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from docworkers.embedded import EmbeddedRedis
from docworkers.queue import RedisJobRepository, RepositoryConfig
from docworkers.workers.circuit_breaker import breakers

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """DOCWORKERS_TEST_REDIS_URL if set, else a private embedded server on a free port."""
    url = os.environ.get("DOCWORKERS_TEST_REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def repo(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[RedisJobRepository]:
    repository = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test"))
    yield repository
    await repository.close()


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    return CORPUS


def check_invariants(client: redis.Redis, repo: RedisJobRepository) -> dict[str, str]:
    """Every job hash is in exactly one state collection matching its status, and every
    collection member has a hash. Returns {job id: status}."""
    keys = repo.keys
    expected = {
        "pending": {keys.pending}, "queued": {keys.queued, keys.scheduled},
        "retrying": {keys.scheduled}, "processing": {keys.active},
        "completed": {keys.completed}, "failed": {keys.failed}, "dead": {keys.dead},
        "cancelled": {keys.cancelled},
    }
    members = {c: set(client.zrange(c, 0, -1)) for c in keys.collections()}
    statuses: dict[str, str] = {}
    for key in client.scan_iter(match=keys.job_prefix + "*"):
        job_id = key[len(keys.job_prefix):]
        status = client.hget(key, "status")
        assert status is not None
        found = {c for c, ids in members.items() if job_id in ids}
        assert len(found) == 1, f"job {job_id} ({status}) is in {found}"
        assert found <= expected[status], f"job {job_id} is {status} but in {found}"
        assert client.zscore(keys.all_jobs, job_id) is not None
        statuses[job_id] = status
    for collection, ids in members.items():
        assert ids <= set(statuses), f"{collection} holds ids without a job hash"
    return statuses


@pytest.fixture
def invariants(clean_redis: redis.Redis, repo: RedisJobRepository):  # type: ignore[no-untyped-def]
    return lambda: check_invariants(clean_redis, repo)


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real local model, loaded once per test session."""
    from docworkers.ingest.embedding import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder()


@pytest.fixture
async def ingest_env(redis_url: str, clean_redis: redis.Redis, tmp_path: Path,
                     embedder):  # type: ignore[no-untyped-def]
    """Real Redis, real embedded Chroma in tmp_path, the real model: an UploadWorker's world."""
    import redis.asyncio as aioredis

    from docworkers.ingest.document_repository import DocumentRepository
    from docworkers.ingest.pipeline import DocumentServices
    from docworkers.ingest.vector_store import ChromaVectorRepository

    jobs = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="ingest"))
    documents = DocumentRepository(aioredis.Redis.from_url(redis_url, decode_responses=True))
    vectors = ChromaVectorRepository.from_path(tmp_path / "chroma")
    services = DocumentServices.local(embedder)
    yield {"jobs": jobs, "documents": documents, "vectors": vectors, "services": services,
           "embedder": embedder}
    await services.aclose()
    vectors.close()
    await documents.client.aclose()
    await jobs.close()


@pytest.fixture
def isolated_breakers() -> Iterator[None]:
    """Breakers are process-wide (like loggers): forget those a test created."""
    before = set(breakers())
    yield
    for name, breaker in breakers().items():
        if name not in before:
            breaker.unregister()
