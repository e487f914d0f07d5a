"""The Redis job repository: job model, key names, Lua scripts, leases."""

from docworkers.queue.filters import JobFilter
from docworkers.queue.job import TERMINAL_STATUSES, Job, JobErrorInfo, JobStatus
from docworkers.queue.protocol import (
    AdminRepository,
    Failure,
    FailureKind,
    JobRepository,
    Reservation,
    WorkerRepository,
)
from docworkers.queue.repository import RedisJobRepository, RepositoryConfig
from docworkers.queue.spec import JobSpec
from docworkers.queue.stats import QueueStats
from docworkers.queue.sync_producer import SyncJobProducer

__all__ = [
    "TERMINAL_STATUSES",
    "AdminRepository",
    "Failure",
    "FailureKind",
    "Job",
    "JobErrorInfo",
    "JobFilter",
    "JobRepository",
    "JobSpec",
    "JobStatus",
    "QueueStats",
    "RedisJobRepository",
    "RepositoryConfig",
    "Reservation",
    "SyncJobProducer",
    "WorkerRepository",
]
