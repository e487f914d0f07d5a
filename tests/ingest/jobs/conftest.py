"""Fixtures of the job tests: one parser process for the session, a fresh world per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from jobs_support import JobsEnv

from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.embedding_batcher import BatchingEmbedder
from docworkers.ingest.enrich import LocalEnricher
from docworkers.ingest.parsing import IsolatedParser
from docworkers.ingest.pipeline import DocumentServices
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.queue import RedisJobRepository, RepositoryConfig


@pytest.fixture
async def env(redis_url: str, clean_redis: redis.Redis, tmp_path: Path, corpus: Path,
              embedder: Embedder, parser: IsolatedParser) -> AsyncIterator[JobsEnv]:
    jobs = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="jobs"))
    uploads = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="uploads"))
    documents = DocumentRepository(aioredis.Redis.from_url(redis_url, decode_responses=True))
    vectors = ChromaVectorRepository.from_path(tmp_path / "chroma")
    services = DocumentServices(parser=parser, embedder=embedder,
                                batcher=BatchingEmbedder(embedder), enricher=LocalEnricher())
    yield JobsEnv(redis=clean_redis, jobs=jobs, uploads=uploads, documents=documents,
                  vectors=vectors, services=services, embedder=embedder, corpus=corpus,
                  tmp=tmp_path)
    await services.batcher.aclose()  # not services.aclose(): the parser is the session's
    vectors.close()
    await documents.client.aclose()
    await uploads.close()
    await jobs.close()
