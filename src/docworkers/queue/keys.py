"""Redis key names for one queue, built in one place.

Every key of a queue carries the ``{queue}`` hash tag, so all of them live in one Redis Cluster
slot and a Lua script may touch any of them. Job hashes are ``<prefix>job:<id>``; scripts get
that prefix through KEYS (a prefix, not a full key, because a script that pops ids from a sorted
set cannot know them in advance; the hash tag keeps the derived keys in the same slot).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from docworkers.errors import ConfigurationError, InvalidJobIdError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def validate_job_id(job_id: str) -> str:
    """Return ``job_id`` if it is safe inside a key name, else raise InvalidJobIdError."""
    if not isinstance(job_id, str) or not _NAME.match(job_id):
        raise InvalidJobIdError(
            f"invalid job id {job_id!r}: use 1-128 characters from letters, digits and _.:- "
            "starting with a letter or digit"
        )
    return job_id


def validate_queue_name(name: str) -> str:
    """Return ``name`` if it can be a queue name (and hash tag), else raise ConfigurationError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            "queue", f"{name!r} is not a valid queue name (1-128 of letters, digits, _.:-)"
        )
    return name


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """All key names of one queue."""

    queue: str
    namespace: str = "dw"

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:{{{self.queue}}}:"

    @property
    def job_prefix(self) -> str:
        return self.prefix + "job:"

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    @property
    def pending(self) -> str:
        """Created but not yet enqueued."""
        return self.prefix + "pending"

    @property
    def queued(self) -> str:
        """Ready to run; score orders by priority, then arrival."""
        return self.prefix + "queued"

    @property
    def scheduled(self) -> str:
        """Delayed jobs and retries waiting for their time; score is the due time (ms)."""
        return self.prefix + "scheduled"

    @property
    def active(self) -> str:
        """Reserved by a worker; score is the lease expiry (ms)."""
        return self.prefix + "active"

    @property
    def completed(self) -> str:
        return self.prefix + "completed"

    @property
    def failed(self) -> str:
        return self.prefix + "failed"

    @property
    def dead(self) -> str:
        """The dead-letter queue: jobs that used up their retries."""
        return self.prefix + "dead"

    @property
    def cancelled(self) -> str:
        return self.prefix + "cancelled"

    @property
    def all_jobs(self) -> str:
        """Every live job id, scored by creation time, for listing."""
        return self.prefix + "jobs"

    @property
    def sequence(self) -> str:
        return self.prefix + "seq"

    @property
    def notify(self) -> str:
        """Wake-up tokens: idle workers block on this list instead of sleep-polling."""
        return self.prefix + "notify"

    @property
    def stats(self) -> str:
        return self.prefix + "stats"

    @property
    def workers(self) -> str:
        """Live workers, scored by heartbeat expiry (ms)."""
        return self.prefix + "workers"

    def worker(self, name: str) -> str:
        return self.prefix + "worker:" + name

    @property
    def supervisors(self) -> str:
        """Live process supervisors (autoscaling worker pools), scored by expiry (ms)."""
        return self.prefix + "supervisors"

    def supervisor(self, name: str) -> str:
        return self.prefix + "supervisor:" + name

    def collections(self) -> tuple[str, ...]:
        """The state collections; a job is in exactly one of them."""
        return (
            self.pending,
            self.queued,
            self.scheduled,
            self.active,
            self.completed,
            self.failed,
            self.dead,
            self.cancelled,
        )
