"""Wiring: build the repositories, model and workers a front door needs from :class:`Settings`.

Heavy parts (the model, Chroma) are created on first use, so commands that only read the
queue start fast. Without a Redis or Chroma URL the servers are the local stack's
(:class:`~docworkers.stack.LocalStack` of ``settings.home``), found or started on first use and
shared with every other process of that data folder; ``close()`` leaves them running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import redis

from docworkers.errors import RepositoryConnectionError, VectorStoreError
from docworkers.ingest.jobs.kinds import (
    BULK_IMPORT_JOB_TYPE,
    COLLECTION_DELETE_JOB_TYPE,
    DOCUMENT_DELETE_JOB_TYPE,
    METADATA_EXTRACT_JOB_TYPE,
    UPLOAD_JOB_TYPE,
    VECTOR_REINDEX_JOB_TYPE,
    job_kind,
    router,
)
from docworkers.queue import RedisJobRepository, RepositoryConfig
from docworkers.queue.redis.clients import sync_client
from docworkers.queue.routing import RoutedQueues
from docworkers.settings import Settings
from docworkers.stack import LocalStack, with_local_servers
from docworkers.workers import BaseWorker, WorkerConfig
from docworkers.workers.hooks import WorkerHook
from docworkers.workers.service_guard import ServiceGuard
from docworkers.workers.standard_hooks import default_hooks

if TYPE_CHECKING:  # the upload pipeline loads numpy, the model and Chroma: imported on use
    from docworkers.ingest.document_repository import DocumentRepository
    from docworkers.ingest.embedding import Embedder
    from docworkers.ingest.enrich import Enricher
    from docworkers.ingest.jobs.common import DocumentJobWorker
    from docworkers.ingest.parsing import IsolatedParser
    from docworkers.ingest.pipeline import DocumentServices, UploadPipeline
    from docworkers.ingest.search import SearchService
    from docworkers.ingest.upload_worker import UploadWorker
    from docworkers.ingest.vector_repository import VectorRepository

log = logging.getLogger("docworkers.runtime")


def _document_worker_class(job_type: str) -> type[DocumentJobWorker]:
    from docworkers.ingest.jobs.collection_delete import CollectionDeleteWorker
    from docworkers.ingest.jobs.document_delete import DocumentDeleteWorker
    from docworkers.ingest.jobs.metadata_extract import MetadataExtractWorker
    from docworkers.ingest.jobs.vector_reindex import VectorReindexWorker

    classes: dict[str, type[DocumentJobWorker]] = {
        DOCUMENT_DELETE_JOB_TYPE: DocumentDeleteWorker,
        COLLECTION_DELETE_JOB_TYPE: CollectionDeleteWorker,
        METADATA_EXTRACT_JOB_TYPE: MetadataExtractWorker,
        VECTOR_REINDEX_JOB_TYPE: VectorReindexWorker,
    }
    return classes[job_type]


def embedder_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The kind and options of the embedder ``settings`` configure (the arguments of
    :func:`~docworkers.ingest.embedding.make_embedder`, but for a service guard)."""
    if settings.embedder != "openai":
        return settings.embedder, {}
    return "openai", {"base_url": settings.embedding_url,
                      "model": settings.embedding_model or "text-embedding",
                      "api_key": settings.embedding_api_key}


def embedder_window(settings: Settings) -> int:
    """The token window of the embedder ``settings`` configure, as its class states it: the
    largest and the default chunk_size. Loads no model and asks no server."""
    from docworkers.ingest.embedding import embedder_window as window

    kind, options = embedder_options(settings)
    return window(kind, **options)


def start_parser(settings: Settings) -> IsolatedParser:
    """A new parser for ``settings``, its child starting in the background (see
    :meth:`Runtime.start_parser`)."""
    from docworkers.ingest.parsing import IsolatedParser, ParseLimits

    languages = settings.ocr_languages
    parser = IsolatedParser() if languages is None else IsolatedParser(
        limits=ParseLimits(ocr_languages=languages))
    parser.start()
    return parser


def start_embedder(settings: Settings) -> Future[Embedder] | None:
    """The local model of ``settings``, loading in a thread: its sessions load with the GIL
    released, beside the caller's own start-up (importing Chroma). None for a hosted embedder,
    which needs a runtime's service guard: the runtime makes that one on first use."""
    from docworkers.ingest.embedding import make_embedder

    kind, options = embedder_options(settings)
    if kind == "openai":
        return None
    # A failure is kept in the future, for the runtime to raise where it needs the model; the
    # interpreter joins the thread at exit, so a model still loading is not cut off.
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docworkers-model-load")
    loading = loader.submit(make_embedder, kind, **options)
    loader.shutdown(wait=False)
    return loading


def worker_name(role: str) -> str:
    """Unique in the cluster (worker stats are keyed by name): role, host and pid."""
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return f"{role}-{host or 'host'}-{os.getpid()}"


class Runtime:
    """Everything built from one Settings object; use ``async with Runtime(settings)``."""

    def __init__(self, settings: Settings, *, parser: IsolatedParser | None = None,
                 embedder: Future[Embedder] | None = None) -> None:
        """``parser``: one the caller started early (see :meth:`start_parser`); the runtime
        then owns it and closes it. ``embedder``: the model, loading since the caller's start
        (see :func:`start_embedder`)."""
        self.settings = settings
        self.redis_url = settings.redis_url or ""
        self._jobs: RedisJobRepository | None = None
        self._documents: DocumentRepository | None = None
        self._vectors: VectorRepository | None = None
        self._embedder: Embedder | None = None
        self._embedder_loading = embedder
        self._services: DocumentServices | None = None
        self._parser = parser  # see start_parser()
        self._queue_repos: dict[str, RedisJobRepository] = {}
        self._routed: dict[str, RoutedQueues] = {}
        self._sync_redis: redis.Redis | None = None  # limits of external services (threads)
        self._opened = False

    async def open(self) -> Self:
        """Find (or start) the local stack's Redis if no URL is configured. Idempotent."""
        if self._opened:
            return self
        self._opened = True
        if self.settings.local_redis:
            self.settings = await asyncio.to_thread(with_local_servers, self.settings)
            self.redis_url = self.settings.redis_url or ""
        return self

    @property
    def stack(self) -> LocalStack:
        """The local stack of ``settings.home`` (the servers used when no URL is set)."""
        return LocalStack(self.settings.home)

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        """The errors that mean a configured server is down, worth waiting for at start:
        Redis unreachable, and a Chroma *server* failing (an embedded folder's errors, a
        full disk or corrupt files, do not go away by waiting)."""
        if self.settings.chroma_url or not self.settings.chroma_path:  # a server
            return (RepositoryConnectionError, VectorStoreError)
        return (RepositoryConnectionError,)

    async def check_services(self, *, vectors: bool = True) -> bool:
        """Raise unless Redis and, with ``vectors``, Chroma answer; True otherwise."""
        await self.jobs.ping()
        if vectors:
            self.vectors.ping()
        return True

    @property
    def jobs(self) -> RedisJobRepository:
        if self._jobs is None:
            self._jobs = RedisJobRepository.from_url(
                self.redis_url, RepositoryConfig(queue=self.settings.queue,
                                                 default_max_retries=self.settings.max_retries))
        return self._jobs

    def job_repository(self, queue: str | None = None) -> RedisJobRepository:
        """The job repository of ``queue`` (default: the configured queue), created once, on
        the configured queue's connection pool."""
        if queue is None or queue == self.settings.queue:
            return self.jobs
        if queue not in self._queue_repos:
            self._queue_repos[queue] = self.jobs.for_queue(queue)
        return self._queue_repos[queue]

    def routed(self, base: str | None = None) -> RoutedQueues:
        """The queues of ``base`` (default: the configured queue), one per job type."""
        base = base or self.settings.queue
        if base not in self._routed:
            self._routed[base] = RoutedQueues(router(base), self.job_repository)
        return self._routed[base]

    @property
    def queues(self) -> RoutedQueues:
        return self.routed()

    async def submit(self, job_type: str, payload: Mapping[str, Any], *, priority: int = 0,
                     user_id: str | None = None, tags: Iterable[str] = ()) -> str:
        """Validate ``payload`` for ``job_type`` and enqueue it on the type's queue; the job id.

        InvalidPayloadError names each bad field; ConfigurationError an unknown type.
        """
        from docworkers.ingest.jobs.payloads import validate_payload

        data = validate_payload(job_type, dict(payload))
        return await self.queues.for_type(job_type).enqueue(
            job_type, data, priority=priority, user_id=user_id, tags=list(tags))

    @property
    def documents(self) -> DocumentRepository:
        if self._documents is None:
            from docworkers.ingest.document_repository import DocumentRepository

            # The job repository's client: one connection pool per process.
            self._documents = DocumentRepository(self.jobs.client, url=self.redis_url)
        return self._documents

    @property
    def vectors(self) -> VectorRepository:
        if self._vectors is None:
            from docworkers.ingest.vector_store import ChromaVectorRepository

            # The local stack's server (started on first use) unless one is configured.
            self.settings = with_local_servers(self.settings, redis=False, chroma=True)
            if self.settings.chroma_url:
                self._vectors = ChromaVectorRepository.from_url(self.settings.chroma_url)
            else:
                assert self.settings.chroma_path is not None
                self._vectors = ChromaVectorRepository.from_path(self.settings.chroma_path)
        return self._vectors

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None and self._embedder_loading is not None:
            loading, self._embedder_loading = self._embedder_loading, None
            self._embedder = loading.result()
        if self._embedder is None:
            from docworkers.ingest.embedding import make_embedder

            s = self.settings
            kind, options = embedder_options(s)
            if kind == "openai":
                options["guard"] = self.service_guard("embedding", s.embedding_rate_limit,
                                                      s.embedding_max_concurrency)
            self._embedder = make_embedder(kind, **options)
        return self._embedder

    @property
    def embedder_window(self) -> int:
        """The embedder's ``max_tokens`` (the largest and the default chunk_size), without
        loading the model or asking the embedding server when they are not in use yet."""
        if self._embedder is not None:
            return self._embedder.max_tokens
        return embedder_window(self.settings)

    def enricher(self) -> Enricher:
        s = self.settings
        if s.llm_url:
            from docworkers.ingest.enrich_llm import OpenAIChatEnricher

            return OpenAIChatEnricher(base_url=s.llm_url, model=s.llm_model or "default",
                                      api_key=s.llm_api_key,
                                      guard=self.service_guard("llm", s.llm_rate_limit,
                                                               s.llm_max_concurrency))
        from docworkers.ingest.enrich import LocalEnricher

        return LocalEnricher()

    def service_guard(self, service: str, rate_limit: float | None,
                      max_concurrency: int | None) -> ServiceGuard:
        """The circuit breaker of an external service and its cluster-wide limits, if any."""
        client = None
        if rate_limit is not None or max_concurrency is not None:
            if self._sync_redis is None:
                self._sync_redis = sync_client(self.redis_url)
            client = self._sync_redis
        return ServiceGuard.build(service, client=client, rate_limit=rate_limit,
                                  max_concurrency=max_concurrency,
                                  max_wait=self.settings.limit_max_wait)

    @property
    def services(self) -> DocumentServices:
        if self._services is None:
            from docworkers.ingest.embedding_cache import EmbeddingCache
            from docworkers.ingest.pipeline import DocumentServices

            parser = self.start_parser()  # its child imports the parsers meanwhile
            self._services = DocumentServices.local(
                self.embedder, parser=parser, enricher=self.enricher(),
                cache=EmbeddingCache.from_url(self.redis_url))  # shared by every worker
            self._parser = None  # the services own it now (they close it)
        return self._services

    def start_parser(self) -> IsolatedParser:
        """The parser the upload pipeline will use: the services', else the one given at
        construction, else a new one whose child starts now. ``ingest --wait`` starts its
        parser (the module's :func:`start_parser`) before its own start-up and hands it over,
        so that the child's start (an interpreter importing every parser, ~1 s of one core)
        does not delay the first document (measured on one small document: its parse waited
        0.9 s for the child). A parser the services never take is closed with this runtime."""
        if self._services is not None:
            return self._services.parser
        if self._parser is None:
            self._parser = start_parser(self.settings)
        return self._parser

    def pipeline(self) -> UploadPipeline:
        from docworkers.ingest.pipeline import UploadPipeline

        return UploadPipeline(self.services, self.documents, self.vectors)

    def search_service(self) -> SearchService:
        from docworkers.ingest.search import SearchService

        return SearchService(self.embedder, self.vectors, self.documents)

    def worker_config(self, name: str, concurrency: int | None = None) -> WorkerConfig:
        s = self.settings
        limit = concurrency or s.concurrency
        return WorkerConfig(
            worker_name=name, concurrency=limit,
            max_retries=s.max_retries, retry_delay=s.retry_delay,
            lease_timeout=s.lease_timeout, shutdown_timeout=s.shutdown_timeout,
            log_level=s.log_level, poll_interval=2.0,
            # Autoscaling between min_concurrency and this worker's limit (never above it).
            min_concurrency=None if s.min_concurrency is None else min(s.min_concurrency, limit),
            memory_limit_mb=s.memory_limit_mb,
        )

    def upload_worker_config(self, name: str, concurrency: int | None = None) -> WorkerConfig:
        """worker_config plus the cluster-wide upload limits (DOCWORKERS_UPLOAD_*)."""
        return dataclasses.replace(self.worker_config(name, concurrency),
                                   rate_limit=self.settings.upload_rate_limit,
                                   max_running=self.settings.upload_max_running)

    def upload_worker(self, name: str, concurrency: int | None = None, *,
                      queue: str | None = None, hooks: Sequence[WorkerHook] = (),
                      job_repo: RedisJobRepository | None = None) -> UploadWorker:
        """An upload worker on ``queue`` (default: the configured one), or on ``job_repo``
        (e.g. a view restricted to some jobs); ``hooks`` are given to it besides the default
        ones (e.g. the API's metrics)."""
        from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig

        config = self.upload_worker_config(name, concurrency)
        repo = job_repo or self.job_repository(queue)
        services = self.services  # before Chroma: it starts the parser (see services)
        return UploadWorker(UploadWorkerConfig(
            worker=config, job_repo=repo,
            document_repo=self.documents, vector_repo=self.vectors, services=services,
            hooks=[*default_hooks(config, repo), *hooks] if hooks else None,
        ))

    def pool_workers(self, queues: Sequence[str], types: Sequence[str],
                     concurrency: int | None = None, label: str = "worker") -> list[BaseWorker]:
        """One worker per (base queue, job type), each on the type's queue, with names unique
        in the cluster: ``<label>-<host>-<pid>[-<base queue>][-<type>]`` (the upload worker
        has no type suffix)."""
        workers: list[BaseWorker] = []
        for base in queues:
            for job_type in types:
                name = worker_name(label)
                name += f"-{base}" if len(queues) > 1 else ""
                name += "" if job_type == UPLOAD_JOB_TYPE else f"-{job_type}"
                workers.append(self.job_worker(job_type, name, concurrency, base_queue=base))
        return workers

    def job_worker(self, job_type: str, name: str, concurrency: int | None = None, *,
                   base_queue: str | None = None,
                   job_repo: RedisJobRepository | None = None) -> BaseWorker:
        """The worker of ``job_type`` on its queue of ``base_queue`` (default: the configured
        queue), or on ``job_repo`` (a view of that queue restricted to some jobs).
        ``concurrency`` None: the type's default (1 for all but uploads). Only the types that
        parse or embed load the model."""
        kind = job_kind(job_type)
        routed = self.routed(base_queue)
        repo = job_repo or routed.for_type(job_type)
        concurrency = concurrency if concurrency is not None else kind.concurrency
        if job_type == UPLOAD_JOB_TYPE:
            return self.upload_worker(name, concurrency, job_repo=repo)
        config = self.worker_config(name, concurrency)
        if job_type == BULK_IMPORT_JOB_TYPE:
            from docworkers.ingest.jobs.bulk_import import BulkImportWorker, BulkImportWorkerConfig

            return BulkImportWorker(BulkImportWorkerConfig(
                worker=config, job_repo=repo,
                upload_repo=routed.for_type(UPLOAD_JOB_TYPE), storage_dir=self.storage_dir(),
            ))
        from docworkers.ingest.jobs.common import DocumentJobConfig

        return _document_worker_class(job_type)(DocumentJobConfig(
            worker=config, job_repo=repo, document_repo=self.documents,
            vector_repo=self.vectors, services=self.services if kind.needs_model else None,
        ))

    def storage_dir(self) -> Path:
        path = self.settings.uploads
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def close(self) -> None:
        """Release everything that was created. Idempotent."""
        services, self._services = self._services, None
        parser, self._parser = self._parser, None
        jobs, self._jobs = self._jobs, None
        self._documents = None  # it shares the client of ``jobs``
        vectors, self._vectors = self._vectors, None
        self._queue_repos = {}  # they share the connections of ``jobs``
        self._routed = {}
        if services is not None:
            await services.aclose()
        if parser is not None:  # started, never used
            await asyncio.to_thread(parser.close)
        if jobs is not None:
            await jobs.close()
        if vectors is not None:
            vectors.close()
        sync_redis, self._sync_redis = self._sync_redis, None
        if sync_redis is not None:
            sync_redis.close()
        self._opened = False

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
