"""Prometheus metrics for ``GET /metrics``, in a registry of the app's own.

Two sources:

* **Queue-wide state** from ``RedisJobRepository.stats()``, read at scrape time: jobs by status,
  totals by type, retries, dead letters, queue depth, live workers (every process of the
  cluster, not only this one). Totals kept in Redis since the queue was created are exposed as
  counters; a counter that goes down (someone flushed Redis) reads to Prometheus as a reset.
* **This process**: processing-time and per-stage histograms observed from the results of jobs
  that in-process workers completed, embedding batcher counters, and upload outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from docworkers.ingest.embedding_batcher import BatcherStats
from docworkers.queue import QueueStats

__all__ = ["CONTENT_TYPE_LATEST", "ApiMetrics"]

_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                    1800.0)


class _QueueCollector(Collector):
    """Metric families from the last QueueStats read (set just before each scrape)."""

    def __init__(self) -> None:
        self.stats: QueueStats | None = None
        self.batchers: Callable[[], Iterable[BatcherStats]] = lambda: ()

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "docworkers_redis_up", "1 if this scrape could read the queue statistics from Redis",
            value=1 if self.stats is not None else 0)
        if self.stats is not None:
            yield from self._queue(self.stats)
        yield from self._embedding(list(self.batchers()))

    @staticmethod
    def _queue(s: QueueStats) -> Iterable[Metric]:
        jobs = GaugeMetricFamily("docworkers_jobs", "Jobs now in each status",
                                 labels=["queue", "status"])
        for status, count in sorted(s.by_status.items()):
            jobs.add_metric([s.queue, status], count)
        yield jobs
        for name, doc, by_type in (
            ("docworkers_jobs_completed", "Jobs completed, by job type", s.completed_by_type),
            ("docworkers_jobs_failed", "Jobs that failed for good, by job type",
             s.failed_by_type),
        ):
            family = CounterMetricFamily(name, doc, labels=["queue", "type"])
            for job_type, count in sorted(by_type.items()):
                family.add_metric([s.queue, job_type], count)
            yield family
        for name, doc, value in (
            ("docworkers_job_retries", "Job attempts that were retried", s.total_retried),
            ("docworkers_jobs_dead_lettered", "Jobs moved to the dead-letter queue",
             s.total_dead),
            ("docworkers_lease_expirations", "Job leases that expired (a worker vanished)",
             s.total_lease_expired),
        ):
            counter = CounterMetricFamily(name, doc, labels=["queue"])
            counter.add_metric([s.queue], value)
            yield counter
        depth = GaugeMetricFamily("docworkers_queue_depth",
                                  "Jobs waiting to run (queued, scheduled and retrying)",
                                  labels=["queue"])
        depth.add_metric([s.queue], s.by_status.get("queued", 0) + s.by_status.get("retrying", 0))
        yield depth
        workers = GaugeMetricFamily("docworkers_workers",
                                    "Workers with a live heartbeat, in every process",
                                    labels=["queue"])
        workers.add_metric([s.queue], s.active_workers)
        yield workers

    @staticmethod
    def _embedding(batchers: list[BatcherStats]) -> Iterable[Metric]:
        if not batchers:
            return
        for field, doc in (("requests", "Embedding requests queued by in-process jobs"),
                           ("texts", "Texts embedded by in-process workers"),
                           ("batches", "Model calls made by the embedding batcher"),
                           ("failed_batches", "Model calls that failed")):
            yield CounterMetricFamily(f"docworkers_embedding_{field}", doc,
                                      value=sum(getattr(b, field) for b in batchers))
        yield CounterMetricFamily("docworkers_embedding_busy_seconds",
                                  "Wall time the embedding model spent computing",
                                  value=sum(b.busy_seconds for b in batchers))


class ApiMetrics:
    """The app's metrics. ``observe_upload_result`` is called by in-process workers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._queue = _QueueCollector()
        self.registry.register(self._queue)
        self.processing = Histogram(
            "docworkers_job_processing_seconds",
            "End-to-end processing time of uploads completed by this process's workers",
            ["type"], buckets=_SECONDS_BUCKETS, registry=self.registry)
        self.stages = Histogram(
            "docworkers_job_stage_seconds",
            "Time per pipeline stage (parsing, chunking, embedding, storing, finalizing)",
            ["stage"], buckets=_SECONDS_BUCKETS, registry=self.registry)
        self.uploads = Counter("docworkers_uploads", "Upload requests by outcome",
                               ["outcome"], registry=self.registry)
        self.upload_bytes = Counter("docworkers_upload_bytes",
                                    "Bytes of accepted uploads", registry=self.registry)

    def watch_batchers(self, source: Callable[[], Iterable[BatcherStats]]) -> None:
        self._queue.batchers = source

    def observe_upload_result(self, job_type: str, result: Mapping[str, Any]) -> None:
        """Record one completed job's ``processing_time_ms`` and ``timings_ms``."""
        elapsed = result.get("processing_time_ms")
        if isinstance(elapsed, int | float):
            self.processing.labels(job_type).observe(elapsed / 1000)
        timings = result.get("timings_ms")
        if isinstance(timings, Mapping):
            for stage, ms in timings.items():
                if isinstance(ms, int | float):
                    self.stages.labels(str(stage)).observe(ms / 1000)

    def render(self, stats: QueueStats | None) -> bytes:
        """The exposition text, with ``stats`` (None when Redis could not be read)."""
        self._queue.stats = stats
        return bytes(_generate_latest(self.registry))
