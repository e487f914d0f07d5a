"""Prometheus metrics for ``GET /metrics``, in a registry of the app's own.

Two sources:

* **Queue-wide state** from ``RedisJobRepository.stats()``, read at scrape time: jobs by status,
  totals by type, retries, dead letters, queue depth, live workers (every process of the
  cluster, not only this one), and the circuit breakers and refused calls that each worker
  process publishes with its heartbeat. Totals kept in Redis since the queue was created are
  exposed as counters; a counter that goes down (someone flushed Redis) reads to Prometheus as
  a reset.
* **History totals** from :meth:`HistoryReader.totals`, read at scrape time: the cluster-wide
  processing-time histogram of completed jobs, in the bins ``GET /api/history`` computes its
  percentiles from, and failed attempts, by job type; both monotonic since the queue began.
  The per-minute and per-day buckets are not series: Prometheus derives them with
  ``increase()`` and ``histogram_quantile()``.
* **This process**: processing-time and per-stage histograms observed from the results of jobs
  that in-process workers completed, embedding batcher counters, and upload outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from docworkers.ingest.embedding_batcher import BatcherStats
from docworkers.queue import QueueStats
from docworkers.queue.history import BOUNDS_MS, Totals

__all__ = ["CONTENT_TYPE_LATEST", "ApiMetrics"]

_BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                    1800.0)


class _QueueCollector(Collector):
    """Metric families from the last QueueStats read (set just before each scrape)."""

    def __init__(self) -> None:
        self.stats: QueueStats | None = None
        self.totals: Totals | None = None
        self.batchers: Callable[[], Iterable[BatcherStats]] = lambda: ()

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "docworkers_redis_up", "1 if this scrape could read the queue statistics from Redis",
            value=1 if self.stats is not None else 0)
        if self.stats is not None:
            yield from self._queue(self.stats)
            if self.totals is not None:
                yield from _history(self.stats.queue, self.totals)
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
        yield from _QueueCollector._protection(s.workers)
        yield from _scaling(s)

    @staticmethod
    def _protection(published: list[dict[str, Any]]) -> Iterable[Metric]:
        """Breaker states and refused calls from the workers' heartbeats. Both belong to a
        process (its breakers serve all its workers), so they are labelled by ``host:pid``
        and a process with several workers counts once."""
        states: dict[tuple[str, str], int] = {}
        refused: dict[tuple[str, str], int] = {}
        for worker in published:
            process = f"{worker.get('host', '')}:{worker.get('pid', '')}"
            breakers = worker.get("breakers")
            for name, state in (breakers.items() if isinstance(breakers, dict) else ()):
                key = (str(name), process)
                states[key] = max(states.get(key, 0), _BREAKER_STATES.get(str(state), 0))
            limited = worker.get("limited")
            for name, count in (limited.items() if isinstance(limited, dict) else ()):
                if isinstance(count, int):
                    key = (str(name), process)
                    refused[key] = max(refused.get(key, 0), count)
        gauge = GaugeMetricFamily(
            "docworkers_circuit_breaker_state",
            "Circuit breaker of an external service: 0 closed, 1 half-open, 2 open",
            labels=["service", "process"])
        for (name, process), value in sorted(states.items()):
            gauge.add_metric([name, process], value)
        yield gauge
        counter = CounterMetricFamily(
            "docworkers_refused_calls",
            "Calls refused without being tried, by an open circuit breaker (breaker:<name>) "
            "or a cluster-wide rate or concurrency limit (rate:<name>, concurrency:<name>)",
            labels=["limit", "process"])
        for (name, process), value in sorted(refused.items()):
            counter.add_metric([name, process], value)
        yield counter

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


def _history(queue: str, totals: Totals) -> Iterable[Metric]:
    """The processing-time histogram and the failed attempts, every queue's added up under the
    base queue's name (as the other queue families)."""
    durations = HistogramMetricFamily(
        "docworkers_job_duration_seconds",
        "Processing time of completed jobs, every worker of the cluster (counted in Redis as "
        "jobs complete; the bins of GET /api/history's percentiles)", labels=["queue", "type"])
    for job_type, histogram in sorted(totals.durations.items()):
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, count in zip(BOUNDS_MS, histogram.bins, strict=False):
            cumulative += count
            buckets.append((repr(bound / 1000), cumulative))
        buckets.append(("+Inf", histogram.count))
        durations.add_metric([queue, job_type], buckets, histogram.sum_ms / 1000)
    yield durations
    failures = CounterMetricFamily(
        "docworkers_job_failures",
        "Failed job attempts: retried, dead-lettered or failed for good, and expired leases",
        labels=["queue", "type"])
    for job_type, count in sorted(totals.failed.items()):
        failures.add_metric([queue, job_type], count)
    yield failures


def _scaling(s: QueueStats) -> Iterable[Metric]:
    """Autoscaling, cluster-wide: each worker's concurrency limit now and its bounds, and each
    process supervisor's processes (``docworkers worker --max-processes``)."""
    limit = GaugeMetricFamily(
        "docworkers_worker_concurrency",
        "Jobs a worker may run at once: its limit now (autoscaling moves it) and its bounds",
        labels=["worker", "bound"])
    busy = GaugeMetricFamily("docworkers_worker_in_flight", "Jobs a worker is running now",
                             labels=["worker"])
    for w in s.workers:
        name = str(w.get("worker_name", "?"))
        for bound, key in (("current", "concurrency"), ("min", "min_concurrency"),
                           ("max", "max_concurrency")):
            value = w.get(key)
            if isinstance(value, int):
                limit.add_metric([name, bound], value)
        busy.add_metric([name], int(w.get("in_flight", 0)))
    yield limit
    yield busy
    processes = GaugeMetricFamily(
        "docworkers_worker_processes",
        "Worker processes of an autoscaling pool: running now, wanted for the backlog, bounds",
        labels=["supervisor", "kind"])
    for sup in s.supervisors:
        name = str(sup.get("name", "?"))
        for kind, key in (("running", "processes"), ("retiring", "retiring"),
                          ("wanted", "wanted"), ("min", "min_processes"),
                          ("max", "max_processes")):
            value = sup.get(key)
            if isinstance(value, int):
                processes.add_metric([name, kind], value)
    yield processes


#: The embedding cache's counts in an upload's result -> the metric's outcome label.
_CACHE_OUTCOMES = {"hits": "hit", "misses": "miss", "errors": "error"}


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
        self.embedding_cache = Counter(
            "docworkers_embedding_cache_texts",
            "Chunks of uploads completed by this process's workers, by embedding cache outcome "
            "(hit: not sent to the model; miss: embedded; error: cache requests that failed)",
            ["outcome"], registry=self.registry)

    def watch_batchers(self, source: Callable[[], Iterable[BatcherStats]]) -> None:
        self._queue.batchers = source

    def observe_upload_result(self, job_type: str, result: Mapping[str, Any]) -> None:
        """Record one completed job's ``processing_time_ms``, ``timings_ms`` and
        ``embedding_cache`` counts."""
        elapsed = result.get("processing_time_ms")
        if isinstance(elapsed, int | float):
            self.processing.labels(job_type).observe(elapsed / 1000)
        timings = result.get("timings_ms")
        if isinstance(timings, Mapping):
            for stage, ms in timings.items():
                if isinstance(ms, int | float):
                    self.stages.labels(str(stage)).observe(ms / 1000)
        cache = result.get("embedding_cache")
        if isinstance(cache, Mapping):
            for outcome in ("hits", "misses", "errors"):
                count = cache.get(outcome)
                if isinstance(count, int) and count > 0:
                    self.embedding_cache.labels(_CACHE_OUTCOMES[outcome]).inc(count)

    def render(self, stats: QueueStats | None, totals: Totals | None = None) -> bytes:
        """The exposition text, with ``stats`` and the history ``totals`` (None when Redis
        could not be read)."""
        self._queue.stats = stats
        self._queue.totals = totals
        return bytes(_generate_latest(self.registry))
