"""Worker configuration: the documented defaults, validated at construction.

Durations are seconds as ``float`` everywhere in docworkers (a ``timedelta`` is accepted and
converted), so a setting read from the environment and one written in code look the same.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from docworkers.errors import ConfigurationError
from docworkers.queue.job import DEFAULT_MAX_RETRIES

_DURATIONS = ("poll_interval", "shutdown_timeout", "retry_delay", "retry_delay_cap",
              "lease_timeout", "job_timeout", "scale_interval")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Jobs one worker runs at once when its WorkerConfig leaves concurrency at 0: each worker
# class says how many (BaseWorker.default_concurrency). A FunctionWorker (async handlers,
# mostly waiting on I/O, like arq's, saq's and taskiq's jobs) gets many slots. Draining 10,000
# one-INCR jobs (benchmarks/peers, 2026-12-06, load 1-3): 2,000-2,300 jobs/s at 3, 5,400 at 20,
# 7,000-10,500 at 50, 6,000 at 100; 50 also had the lowest worker CPU per job.
DEFAULT_CONCURRENCY = 50
# The upload and document workers' jobs parse and embed on the CPU, and one process has the
# cores it has: their default, and DOCWORKERS_CONCURRENCY's (Settings), which the Runtime and
# `docworkers worker` build them with.
CPU_BOUND_CONCURRENCY = 3


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerConfig:
    """How one worker runs. Only ``worker_name`` is required.

    poll_interval is the longest an idle worker waits before it looks again; a new job wakes it
    at once. lease_timeout is how long a reserved job stays ours without a heartbeat; the
    heartbeat runs every lease_timeout / 3. job_timeout (None = none) bounds one attempt.
    """

    worker_name: str
    # 0: the worker's own default (a FunctionWorker DEFAULT_CONCURRENCY, the upload and
    # document workers CPU_BOUND_CONCURRENCY), filled in when the worker is built
    concurrency: int = 0
    poll_interval: float = 2.0
    shutdown_timeout: float = 30.0
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_delay: float = 5.0
    enable_recovery: bool = True
    retry_delay_cap: float = 300.0
    retry_jitter: bool = True  # full jitter: a retry waits uniform(0, backoff); False: exactly it
    lease_timeout: float = 30.0
    job_timeout: float | None = None
    prefetch: int = 0  # jobs reserved per round trip; 0 = up to the free slots
    urgent_slots: int = 0  # slots kept free for jobs of priority >= urgent_priority
    urgent_priority: int = 100
    # Dynamic concurrency (workers/autoscale.py): None keeps ``concurrency`` fixed; a number
    # makes the worker move between it and ``concurrency`` every scale_interval seconds.
    min_concurrency: int | None = None
    scale_interval: float = 2.0
    latency_tolerance: float = 2.0
    memory_limit_mb: float | None = None  # above this RSS the limit halves (with autoscaling)
    log_level: str = "INFO"
    # Cluster-wide limits per job type (workers/job_limits.py); None = unlimited, no Redis cost.
    rate_limit: float | None = None  # job starts per second, summed over every worker
    max_running: int | None = None  # jobs running at once, summed over every worker

    def __post_init__(self) -> None:
        for name in _DURATIONS:
            value = getattr(self, name)
            if isinstance(value, timedelta):
                object.__setattr__(self, name, value.total_seconds())
        if not isinstance(self.worker_name, str) or not self.worker_name.strip():
            raise ConfigurationError("worker_name", "must be a non-empty string")
        if any(c.isspace() for c in self.worker_name):
            raise ConfigurationError("worker_name", "must not contain whitespace")
        _at_least("concurrency", self.concurrency, 0)
        _at_least("max_retries", self.max_retries, 0)
        _at_least("prefetch", self.prefetch, 0)
        _at_least("urgent_slots", self.urgent_slots, 0)
        if self.concurrency and self.urgent_slots >= self.concurrency:
            raise ConfigurationError("urgent_slots", "must be smaller than concurrency, or "
                                     "no slot would be left for ordinary jobs")
        self._check_autoscaling()
        for name in ("poll_interval", "shutdown_timeout", "retry_delay", "retry_delay_cap"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigurationError(name, f"must be a non-negative duration, got {value!r}")
        if not isinstance(self.retry_jitter, bool):
            raise ConfigurationError("retry_jitter", f"must be True or False, got "
                                     f"{self.retry_jitter!r}")
        if self.poll_interval <= 0:
            raise ConfigurationError("poll_interval", "must be greater than 0")
        if self.lease_timeout < 0.1:
            raise ConfigurationError("lease_timeout", "must be at least 0.1 seconds")
        if self.job_timeout is not None and self.job_timeout <= 0:
            raise ConfigurationError("job_timeout", "must be positive or None")
        if self.log_level.upper() not in _LOG_LEVELS:
            raise ConfigurationError("log_level", f"must be one of {', '.join(_LOG_LEVELS)}")
        if self.rate_limit is not None and (
                isinstance(self.rate_limit, bool) or not isinstance(self.rate_limit, int | float)
                or not 0 < self.rate_limit < float("inf")):
            raise ConfigurationError("rate_limit", f"must be a positive number of job starts "
                                     f"per second or None, got {self.rate_limit!r}")
        if self.max_running is not None:
            _at_least("max_running", self.max_running, 1)

    def _check_autoscaling(self) -> None:
        if self.min_concurrency is None:
            return
        _at_least("min_concurrency", self.min_concurrency, 1)
        if self.concurrency and self.min_concurrency > self.concurrency:
            raise ConfigurationError("min_concurrency", f"must not exceed concurrency "
                                     f"({self.concurrency}), the upper bound of autoscaling")
        if self.urgent_slots >= self.min_concurrency:
            raise ConfigurationError("urgent_slots", "must be smaller than min_concurrency, or "
                                     "a scaled-down worker would run only urgent jobs")
        if not isinstance(self.scale_interval, int | float) or self.scale_interval <= 0:
            raise ConfigurationError("scale_interval", "must be a positive duration")
        if not isinstance(self.latency_tolerance, int | float) or self.latency_tolerance < 1:
            raise ConfigurationError("latency_tolerance", "must be a number >= 1 (a factor "
                                     "over the best recent job latency)")
        if self.memory_limit_mb is not None and (
                not isinstance(self.memory_limit_mb, int | float) or self.memory_limit_mb <= 0):
            raise ConfigurationError("memory_limit_mb", "must be a positive number of MiB or "
                                     "None")

    @property
    def autoscaling(self) -> bool:
        return self.min_concurrency is not None

    @property
    def heartbeat_interval(self) -> float:
        return self.lease_timeout / 3

    def with_default_concurrency(self, default: int) -> WorkerConfig:
        """This config with ``default`` as its concurrency if it left it at 0 (the worker's
        own default), checked again as a whole."""
        return self if self.concurrency else replace(self, concurrency=default)

    @property
    def batch_size(self) -> int:
        return self.prefetch or self.concurrency


def _at_least(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(name, f"must be an integer >= {minimum}, got {value!r}")


def default_worker_config(name: str) -> WorkerConfig:
    """The documented defaults for a worker called ``name``."""
    return WorkerConfig(worker_name=name)
