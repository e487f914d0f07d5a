"""The worker framework: protocol, base worker and its hooks, pool, configuration, backoff,
statistics, and ``run``, the event loop to run them on."""

from docworkers.workers.backoff import backoff_delay
from docworkers.workers.base import BaseWorker
from docworkers.workers.config import WorkerConfig, default_worker_config
from docworkers.workers.context import JobContext
from docworkers.workers.event_loop import run
from docworkers.workers.function_worker import FunctionWorker, Handler
from docworkers.workers.hooks import WorkerHook
from docworkers.workers.pool import WorkerPool
from docworkers.workers.protocol import Worker
from docworkers.workers.stats import WorkerStats

__all__ = [
    "BaseWorker",
    "FunctionWorker",
    "Handler",
    "JobContext",
    "Worker",
    "WorkerConfig",
    "WorkerHook",
    "WorkerPool",
    "WorkerStats",
    "backoff_delay",
    "default_worker_config",
    "run",
]
