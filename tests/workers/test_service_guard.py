"""ServiceGuard around the real HTTP clients of external services: a breaker that only real
outages open, and cluster-wide limits kept in a real Redis (shared with the async limiters).

The embedding and LLM services are real local HTTP servers (the only fakes: hosted services we
cannot run). Breakers run on a simulated clock, so nothing here waits for a cool-down."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from local_http import LocalHTTPServer, Request
from manual_clock import ManualClock
from redis.asyncio import Redis

from docworkers.errors import (
    CircuitOpenError,
    ConfigurationError,
    EmbeddingError,
    EnrichmentError,
    RateLimitedError,
)
from docworkers.ingest.embedding_http import OpenAIEmbedder
from docworkers.ingest.enrich_llm import OpenAIChatEnricher
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.pipeline import DocumentServices
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.queue import JobStatus, RedisJobRepository
from docworkers.queue.rate_limit import RedisRateLimiter, concurrency_key, refusals
from docworkers.queue.rate_limit_sync import SyncConcurrencyLimiter, SyncRateLimiter
from docworkers.settings import Settings
from docworkers.workers import WorkerConfig
from docworkers.workers.circuit_breaker import (
    CircuitBreaker,
    CircuitState,
    breaker_states,
)
from docworkers.workers.service_guard import ServiceGuard, refused_calls

pytestmark = pytest.mark.usefixtures("isolated_breakers")

DIM = 8


class Service(LocalHTTPServer):
    """An OpenAI-compatible server on 127.0.0.1 that answers with ``status`` (200: small
    embeddings for /v1/embeddings, a JSON chat completion for /v1/chat/completions)."""

    def __init__(self) -> None:
        self.status = 200
        super().__init__(self._answer)
        self.url += "/v1"

    def _answer(self, request: Request) -> tuple[int, Any]:
        if self.status != 200:
            return self.status, {"error": {"message": "not today"}}
        if request.path.endswith("/embeddings"):
            data = [{"index": i, "embedding": [1.0] + [0.0] * (DIM - 1)}
                    for i, _ in enumerate(request.body["input"])]
            return 200, {"data": data}
        content = json.dumps({"keywords": ["alpha", "beta"]})
        return 200, {"choices": [{"message": {"content": content}}]}


@pytest.fixture
def service() -> Iterator[Service]:
    with Service() as running:
        yield running


@pytest.fixture
def sync_client(redis_url: str, clean_redis: redis.Redis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def async_client(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def guarded(name: str, clock: ManualClock, **limits: Any) -> ServiceGuard:
    breaker = CircuitBreaker(name, failure_threshold=2, reset_timeout=5.0, clock=clock)
    return ServiceGuard(breaker, **limits)


# -- the breaker counts outages, not rejected input -------------------------------------------


def test_embedder_breaker_opens_on_5xx_not_on_4xx_and_recovers(service: Service) -> None:
    clock = ManualClock()
    guard = guarded("test-embed", clock)
    with OpenAIEmbedder(base_url=service.url, model="m", dimension=DIM, guard=guard) as remote:
        assert remote.embed(["a", "b"]).shape == (2, DIM)
        service.status = 400  # the service is up and says the input is wrong: not an outage
        for _ in range(5):
            with pytest.raises(EmbeddingError, match=r"rejected .*HTTP 400"):
                remote.embed(["a"])
        assert guard.breaker.state is CircuitState.CLOSED
        service.status = 503
        for _ in range(2):
            with pytest.raises(EmbeddingError, match="HTTP 503"):
                remote.embed(["a"])
        assert breaker_states()["test-embed"] == "open"
        asked = len(service.requests)
        with pytest.raises(CircuitOpenError) as refused:
            remote.embed(["a"])
        assert len(service.requests) == asked  # refused without a request
        assert refused.value.retryable and refused.value.retry_after == pytest.approx(5.0)
        assert refused_calls()["breaker:test-embed"] == 1

        service.status = 200
        clock.now += 5.0  # half open: the next call is the probe, and it closes the breaker
        assert remote.embed(["a"]).shape == (1, DIM)
        assert breaker_states()["test-embed"] == "closed"


def test_llm_breaker_counts_429_and_unreachable_but_not_400(service: Service) -> None:
    clock = ManualClock()
    guard = guarded("test-llm", clock)
    with OpenAIChatEnricher(base_url=service.url, model="m", guard=guard) as llm:
        assert llm.keywords("some text", "en", 2) == ["alpha", "beta"]
        service.status = 400
        for _ in range(3):
            with pytest.raises(EnrichmentError, match="HTTP 400"):
                llm.keywords("some text", "en")
        assert guard.breaker.state is CircuitState.CLOSED
        service.status = 429
        with pytest.raises(EnrichmentError, match="HTTP 429"):
            llm.keywords("some text", "en")
        service.close()  # gone: connection refused is the second consecutive outage
        with pytest.raises(EnrichmentError, match="is the server running"):
            llm.keywords("some text", "en")
        with pytest.raises(CircuitOpenError):
            llm.keywords("some text", "en")


async def test_open_llm_breaker_skips_enrichment_and_the_upload_completes(
        service: Service, ingest_env: dict[str, Any], tmp_path: Path) -> None:
    guard = guarded("test-llm-upload", ManualClock())
    llm = OpenAIChatEnricher(base_url=service.url, model="m", guard=guard)
    service.status = 503
    for _ in range(2):
        with pytest.raises(EnrichmentError, match="HTTP 503"):
            llm.keywords("some text", "en")
    asked = len(service.requests)
    services = DocumentServices.local(ingest_env["embedder"], enricher=llm)
    document = tmp_path / "note.txt"
    document.write_text("Counterparty exposure is capped at ten percent of capital.\n")
    jobs: RedisJobRepository = ingest_env["jobs"]
    worker = UploadWorker(UploadWorkerConfig(
        worker=WorkerConfig(worker_name="llm-outage", poll_interval=0.05, retry_delay=30.0),
        job_repo=jobs, document_repo=ingest_env["documents"], vector_repo=ingest_env["vectors"],
        services=services))
    try:
        job_id = await jobs.enqueue(UPLOAD_JOB_TYPE, {
            "filename": document.name, "file_path": str(document), "collection": "llm-outage",
            "extract_metadata": True, "num_questions": 1})
        async with worker:
            while not (job := await jobs.get_job(job_id)).is_terminal:
                await asyncio.sleep(0.02)
    finally:
        await services.aclose()
        llm.close()
    assert job.status is JobStatus.COMPLETED and job.retry_count == 0, job.error
    assert job.result["enrichment_errors"] and "CircuitOpenError" in \
        job.result["enrichment_errors"][0]
    record = await ingest_env["documents"].get(job.result["document_id"])
    assert record is not None and "circuit breaker" in record.enrichment_errors[0]
    assert len(service.requests) == asked  # enrichment never reached the LLM while it was down


# -- cluster-wide limits from threads ---------------------------------------------------------


def test_rate_limited_embedder_defers_instead_of_blocking(service: Service,
                                                          sync_client: redis.Redis) -> None:
    limiter = SyncRateLimiter(sync_client, "test-embed-rate", rate=0.5, burst=1)
    guard = guarded("test-embed-rate", ManualClock(), rate=limiter, max_wait=0.0)
    with OpenAIEmbedder(base_url=service.url, model="m", dimension=DIM, guard=guard) as remote:
        remote.embed(["a"])
        with pytest.raises(RateLimitedError) as info:
            remote.embed(["b"])
    assert len(service.requests) == 1  # the refused call was never sent
    assert info.value.retryable and 1.0 < info.value.retry_after <= 2.0
    assert refusals()["rate:test-embed-rate"] >= 1
    assert guard.breaker.state is CircuitState.CLOSED  # a limit is not an outage


async def test_sync_and_async_limiters_share_one_bucket(sync_client: redis.Redis,
                                                        async_client: Redis) -> None:
    threads = SyncRateLimiter(sync_client, "common", rate=1, burst=3)
    loop = RedisRateLimiter(async_client, "common", rate=1, burst=3)
    assert threads.try_acquire() == 0.0 and await loop.try_acquire() == 0.0
    assert threads.try_acquire() == 0.0
    assert await loop.try_acquire() > 0 and threads.try_acquire() > 0  # 3 of 3 taken


async def test_sync_concurrency_holds_releases_and_refuses(sync_client: redis.Redis,
                                                           async_client: Redis) -> None:
    slots = SyncConcurrencyLimiter(sync_client, "test-llm-slots", 1, lease=0.3)
    other = SyncConcurrencyLimiter(sync_client, "test-llm-slots", 1, lease=0.3)
    before = refusals().get("concurrency:test-llm-slots", 0)
    with slots.hold(timeout=0) as holding:
        assert await async_client.zcard(concurrency_key("test-llm-slots")) == 1
        with pytest.raises(RateLimitedError) as info, other.hold(timeout=0.05):
            pass
        assert 0 < info.value.retry_after <= 0.3
        threading.Event().wait(0.5)  # past a whole lease: the renewal thread keeps the slot
        assert other.try_acquire("late") > 0 and not holding.lost
    assert refusals()["concurrency:test-llm-slots"] == before + 1
    assert not await async_client.exists(concurrency_key("test-llm-slots"))  # released


def test_open_breaker_refuses_before_spending_a_token(sync_client: redis.Redis) -> None:
    limiter = SyncRateLimiter(sync_client, "test-spend", rate=0.1, burst=1)
    guard = guarded("test-spend", ManualClock(), rate=limiter)
    for _ in range(2):
        with pytest.raises(ValueError):
            guard.breaker.call_sync(int, "not a number")
    with pytest.raises(CircuitOpenError):
        guard.call(int, "1")
    assert limiter.try_acquire() == 0.0  # the only token is still there
    assert "open rate=0.1/s" in repr(guard)


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "field"), [
    ("DOCWORKERS_EMBEDDING_RATE_LIMIT", "0", "embedding_rate_limit"),
    ("DOCWORKERS_LLM_RATE_LIMIT", "-2", "llm_rate_limit"),
    ("DOCWORKERS_UPLOAD_RATE_LIMIT", "inf", "upload_rate_limit"),
    ("DOCWORKERS_EMBEDDING_MAX_CONCURRENCY", "0", "embedding_max_concurrency"),
    ("DOCWORKERS_LLM_MAX_CONCURRENCY", "0", "llm_max_concurrency"),
    ("DOCWORKERS_UPLOAD_MAX_RUNNING", "0", "upload_max_running"),
    ("DOCWORKERS_LIMIT_MAX_WAIT", "-1", "limit_max_wait"),
    ("DOCWORKERS_UPLOAD_MAX_RUNNING", "two", "DOCWORKERS_UPLOAD_MAX_RUNNING"),
])
def test_limit_settings_name_the_field(variable: str, value: str, field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({variable: value}, env_file=None)
    assert info.value.field == field


def test_limit_settings_from_the_environment() -> None:
    settings = Settings.from_env({"DOCWORKERS_EMBEDDING_RATE_LIMIT": "2.5",
                                  "DOCWORKERS_UPLOAD_MAX_RUNNING": "4"}, env_file=None)
    assert settings.embedding_rate_limit == 2.5 and settings.upload_max_running == 4
    assert settings.llm_rate_limit is None and settings.limit_max_wait == 10.0


@pytest.mark.parametrize(("options", "field"), [
    ({"rate_limit": 0}, "rate_limit"),
    ({"rate_limit": float("nan")}, "rate_limit"),
    ({"rate_limit": True}, "rate_limit"),
    ({"max_running": 0}, "max_running"),
    ({"max_running": 1.5}, "max_running"),
])
def test_job_limit_config_names_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        WorkerConfig(worker_name="w", **options)
    assert info.value.field == field


def test_guard_arguments_name_the_field(sync_client: redis.Redis) -> None:
    with pytest.raises(ConfigurationError) as info:
        ServiceGuard.build("test-needs-redis", rate_limit=1.0)
    assert info.value.field == "client"
    with pytest.raises(ConfigurationError) as info:
        ServiceGuard.build("test-bad-rate", client=sync_client, rate_limit=0.0)
    assert info.value.field == "rate"
    with pytest.raises(ConfigurationError) as info:
        ServiceGuard(CircuitBreaker("test-bad-wait"), max_wait=-1)
    assert info.value.field == "max_wait"
    guard = ServiceGuard.build("test-built", client=sync_client, rate_limit=2.5,
                               max_concurrency=2)
    assert guard.rate is not None and guard.rate.burst == 2
    assert guard.concurrency is not None and guard.concurrency.limit == 2


async def test_runtime_wires_the_limits_from_settings(redis_url: str,
                                                      clean_redis: redis.Redis) -> None:
    from docworkers.runtime import Runtime

    settings = Settings(redis_url=redis_url, embedder="openai",
                        embedding_url="http://127.0.0.1:9/v1", embedding_rate_limit=4.0,
                        llm_url="http://127.0.0.1:9/v1", llm_max_concurrency=2,
                        limit_max_wait=1.5, upload_rate_limit=3.0, upload_max_running=5)
    async with Runtime(settings) as runtime:
        remote = runtime.embedder
        assert isinstance(remote, OpenAIEmbedder) and remote.guard is not None
        assert remote.guard.name == "embedding" and remote.guard.max_wait == 1.5
        assert remote.guard.rate is not None and remote.guard.rate.rate == 4.0
        assert remote.guard.concurrency is None
        llm = runtime.enricher()
        assert isinstance(llm, OpenAIChatEnricher) and llm.guard is not None
        assert llm.guard.concurrency is not None and llm.guard.concurrency.limit == 2
        config = runtime.upload_worker_config("u")
        assert (config.rate_limit, config.max_running) == (3.0, 5)
        assert runtime.worker_config("other").rate_limit is None  # other job types: unlimited
        llm.close()
        remote.close()
