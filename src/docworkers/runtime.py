"""Wiring: build the repositories, model and workers a front door needs from :class:`Settings`.

Heavy parts (the model, Chroma) are created on first use, so commands that only read the
queue start fast. ``close()`` releases everything, including the embedded Redis server that
is started when no Redis URL is configured.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Self

import redis.asyncio as aioredis

from docworkers.embedded import EmbeddedRedis
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.embedding import Embedder, make_embedder
from docworkers.ingest.enrich import Enricher, LocalEnricher
from docworkers.ingest.pipeline import DocumentServices, UploadPipeline
from docworkers.ingest.search import SearchService
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.ingest.vector_repository import VectorRepository
from docworkers.queue import RedisJobRepository, RepositoryConfig
from docworkers.settings import Settings
from docworkers.workers import WorkerConfig

log = logging.getLogger("docworkers.runtime")


class Runtime:
    """Everything built from one Settings object; use ``async with Runtime(settings)``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedRedis | None = None
        self.redis_url = settings.redis_url or ""
        self._jobs: RedisJobRepository | None = None
        self._documents: DocumentRepository | None = None
        self._vectors: VectorRepository | None = None
        self._embedder: Embedder | None = None
        self._services: DocumentServices | None = None
        self._queue_repos: dict[str, RedisJobRepository] = {}
        self._opened = False

    async def open(self) -> Self:
        """Start the embedded Redis if no URL is configured. Idempotent."""
        if self._opened:
            return self
        self._opened = True
        if not self.settings.redis_url:
            self.embedded = EmbeddedRedis()
            self.redis_url = self.embedded.start()
            log.info("no DOCWORKERS_REDIS_URL set: started a private Redis at %s",
                     self.redis_url)
        return self

    @property
    def uses_embedded_redis(self) -> bool:
        return self.embedded is not None

    @property
    def jobs(self) -> RedisJobRepository:
        if self._jobs is None:
            self._jobs = RedisJobRepository.from_url(
                self.redis_url, RepositoryConfig(queue=self.settings.queue,
                                                 default_max_retries=self.settings.max_retries))
        return self._jobs

    def job_repository(self, queue: str | None = None) -> RedisJobRepository:
        """The job repository of ``queue`` (default: the configured queue), created once."""
        if queue is None or queue == self.settings.queue:
            return self.jobs
        if queue not in self._queue_repos:
            self._queue_repos[queue] = RedisJobRepository.from_url(
                self.redis_url, RepositoryConfig(queue=queue,
                                                 default_max_retries=self.settings.max_retries))
        return self._queue_repos[queue]

    @property
    def documents(self) -> DocumentRepository:
        if self._documents is None:
            client = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
            self._documents = DocumentRepository(client, url=self.redis_url)
        return self._documents

    @property
    def vectors(self) -> VectorRepository:
        if self._vectors is None:
            from docworkers.ingest.vector_store import ChromaVectorRepository

            if self.settings.chroma_url:
                self._vectors = ChromaVectorRepository.from_url(self.settings.chroma_url)
            else:
                self._vectors = ChromaVectorRepository.from_path(self.settings.chroma_path)
        return self._vectors

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            s = self.settings
            if s.embedder == "openai":
                self._embedder = make_embedder("openai", base_url=s.embedding_url,
                                               model=s.embedding_model or "text-embedding",
                                               api_key=s.embedding_api_key)
            else:
                self._embedder = make_embedder(s.embedder)
        return self._embedder

    def enricher(self) -> Enricher:
        s = self.settings
        if s.llm_url:
            from docworkers.ingest.enrich_llm import OpenAIChatEnricher

            return OpenAIChatEnricher(base_url=s.llm_url, model=s.llm_model or "default",
                                      api_key=s.llm_api_key)
        return LocalEnricher()

    @property
    def services(self) -> DocumentServices:
        if self._services is None:
            self._services = DocumentServices.local(self.embedder, enricher=self.enricher())
        return self._services

    def pipeline(self) -> UploadPipeline:
        return UploadPipeline(self.services, self.documents, self.vectors)

    def search_service(self) -> SearchService:
        # Aliases (vector_reindex) live in the shared Redis; a private one has none to resolve.
        documents = self.documents if self.settings.redis_url else None
        return SearchService(self.embedder, self.vectors, documents)

    def worker_config(self, name: str, concurrency: int | None = None) -> WorkerConfig:
        s = self.settings
        return WorkerConfig(
            worker_name=name, concurrency=concurrency or s.concurrency,
            max_retries=s.max_retries, retry_delay=s.retry_delay,
            lease_timeout=s.lease_timeout, shutdown_timeout=s.shutdown_timeout,
            log_level=s.log_level, poll_interval=2.0,
        )

    def upload_worker(self, name: str, concurrency: int | None = None, *,
                      queue: str | None = None) -> UploadWorker:
        return UploadWorker(UploadWorkerConfig(
            worker=self.worker_config(name, concurrency), job_repo=self.job_repository(queue),
            document_repo=self.documents, vector_repo=self.vectors, services=self.services,
        ))

    def storage_dir(self) -> Path:
        path = Path(self.settings.storage_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def close(self) -> None:
        """Release everything that was created. Idempotent."""
        services, self._services = self._services, None
        jobs, self._jobs = self._jobs, None
        documents, self._documents = self._documents, None
        vectors, self._vectors = self._vectors, None
        queue_repos, self._queue_repos = list(self._queue_repos.values()), {}
        if services is not None:
            await services.aclose()
        for repo in [*([jobs] if jobs is not None else []), *queue_repos]:
            await repo.close()
        if documents is not None:
            await documents.client.aclose()
        if vectors is not None:
            vectors.close()
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None
        self._opened = False

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
