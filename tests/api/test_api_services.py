"""An embedding service outage end to end: the upload is deferred while the circuit breaker is
open (no attempt used, never dead-lettered), the breaker's state travels with the worker's
heartbeat to ``/metrics`` and ``docworkers stats``, and the upload completes once the service is
back. The embedding service is a real local HTTP server backed by the real model; the breaker
runs on a simulated clock, so the test decides when it may probe again."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from api_support import running_api
from job_waits import until_async
from local_http import LocalHTTPServer, Request
from manual_clock import ManualClock
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from docworkers.cli.jobs import stats_view
from docworkers.errors import EmbeddingError
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.embedding_http import OpenAIEmbedder
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.pipeline import DocumentServices
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.queue import JobStatus
from docworkers.settings import Settings
from docworkers.workers import WorkerConfig
from docworkers.workers.circuit_breaker import CircuitBreaker, CircuitState
from docworkers.workers.service_guard import ServiceGuard

BREAKER = "test-embedding-outage"
TEXT = ("# Counterparty limits\n\nExposure to a single counterparty is capped at ten percent "
        "of capital. Limits are reviewed every quarter by the risk committee.\n")


class EmbeddingService(LocalHTTPServer):
    """``/v1/embeddings`` on 127.0.0.1 computed by ``model``; 503 while ``down``."""

    def __init__(self, model: Embedder) -> None:
        self.down = False
        self.model = model
        super().__init__(self._answer)

    def _answer(self, request: Request) -> tuple[int, Any]:
        if self.down:
            return 503, {"error": {"message": "overloaded"}}
        vectors = self.model.embed(request.body["input"])
        return 200, {"data": [{"index": i, "embedding": v.tolist()}
                              for i, v in enumerate(vectors)]}


def samples(exposition: str) -> dict[tuple[str, str], float]:
    """{(sample name, service or limit label): value} of a /metrics text."""
    return {(s.name, s.labels.get("service") or s.labels.get("limit", "")): s.value
            for family in text_string_to_metric_families(exposition)
            for s in family.samples}


async def test_embedding_outage_defers_the_upload_and_is_visible_cluster_wide(
        settings: Settings, embedder: Any, tmp_path: Path) -> None:
    document = tmp_path / "limits.md"
    document.write_text(TEXT)
    service = EmbeddingService(embedder)
    clock = ManualClock()
    breaker = CircuitBreaker(BREAKER, failure_threshold=2, reset_timeout=0.2, clock=clock)
    remote = OpenAIEmbedder(base_url=service.url, model="all-minilm", dimension=384,
                            guard=ServiceGuard(breaker))
    services = DocumentServices.local(remote)
    try:
        async with running_api(settings, embedder) as api:
            runtime = api.runtime
            jobs = runtime.jobs
            worker = UploadWorker(UploadWorkerConfig(
                worker=WorkerConfig(worker_name="outage-upload", poll_interval=0.05,
                                    retry_delay=30.0, max_retries=1, lease_timeout=0.6),
                job_repo=jobs, document_repo=runtime.documents, vector_repo=runtime.vectors,
                services=services))
            service.down = True
            for _ in range(2):  # two outages in a row open the breaker
                with pytest.raises(EmbeddingError, match="HTTP 503"):
                    remote.embed(["warm-up"])
            assert breaker.state is CircuitState.OPEN
            asked = len(service.requests)
            job_id = await jobs.enqueue(UPLOAD_JOB_TYPE, {
                "filename": document.name, "file_path": str(document),
                "collection": "outage"}, max_retries=1)
            async with worker:
                async def deferred_three_times() -> bool:
                    job = await jobs.get_job(job_id)
                    return breaker.stats().rejected_calls >= 3 \
                        and job.status is JobStatus.RETRYING and job.error is not None

                # Three refusals > max_retries + 1: had they used attempts, it would be dead.
                await until_async(deferred_three_times, timeout=60)
                job = await jobs.get_job(job_id)
                assert job.retry_count == 0 and job.error is not None
                assert job.error.code == "service_unavailable" and job.error.stage == "embedding"
                assert len(service.requests) == asked  # the breaker kept every call away

                async def published() -> bool:
                    mine = [w for w in (await jobs.stats()).workers
                            if w["worker_name"] == "outage-upload"]
                    return bool(mine) and mine[0]["breakers"].get(BREAKER) == "open" \
                        and mine[0]["limited"].get(f"breaker:{BREAKER}", 0) >= 1

                await until_async(published, timeout=60)
                metrics = samples((await api.get("/metrics")).text)
                assert metrics[("docworkers_circuit_breaker_state", BREAKER)] == 2.0  # open
                assert metrics[("docworkers_refused_calls_total", f"breaker:{BREAKER}")] >= 1
                console = Console(record=True, width=200)
                console.print(stats_view(await jobs.stats()))
                table = console.export_text()
                assert "External services" in table
                assert re.search(BREAKER + r".*open", table)

                service.down = False
                clock.now += 0.2  # cool-down over: the job's next run is the probe

                async def finished() -> bool:
                    return (await jobs.get_job(job_id)).is_terminal

                await until_async(finished, timeout=60)
            job = await jobs.get_job(job_id)
            assert job.status is JobStatus.COMPLETED, job.error
            assert job.retry_count == 0 and job.result["chunk_count"] >= 1
            assert breaker.stats().state is CircuitState.CLOSED
            assert (await jobs.stats()).total_dead == 0
            hits = await runtime.search_service().search("outage", "counterparty exposure cap")
            assert hits and "ten percent" in hits[0].text
    finally:
        breaker.unregister()
        await services.aclose()
        remote.close()
        service.close()
