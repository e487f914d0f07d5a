"""Every Redis key name docworkers uses, built here and nowhere else (pure functions).

Three kinds of namespace, each key with a hash tag so that what one script touches shares a
Redis Cluster slot:

* a queue, ``<ns>:{<queue>}:...`` (:class:`QueueKeys`): its jobs, state collections, workers,
  and the scheduler's last claimed ticks. Job hashes are ``<prefix>job:<id>``; scripts get that
  prefix through KEYS (a prefix, not a full key, because a script that pops ids from a sorted
  set cannot know them in advance; the hash tag keeps the derived keys in the same slot);
* a cluster-wide limit, ``<ns>:{ratelimit:<name>}:bucket`` and
  ``<ns>:{concurrency:<name>}:holders``: a tag of its own, because a limit is shared by every
  queue that uses it and its scripts touch no other key;
* a registry, ``<ns>:{<tag>}:...`` (:class:`RegistryKeys`): records grouped in collections,
  with the fences, aliases, locks and version counters of the jobs that write them (the
  ingest layer's document registry is the registry tagged ``{documents}``).
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
    def events_prefix(self) -> str:
        """Prefix of the job event lists (the timeline: reservations, progress, retries,
        the end); scripts that pop ids append them."""
        return self.prefix + "events:"

    def events(self, job_id: str) -> str:
        """The recorded events of job ``job_id`` (a list, bounded; deleted with the job)."""
        return self.events_prefix + job_id

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
    def intake(self) -> str:
        """Ready jobs pushed in one command each (docworkers.queue.intake), not yet moved into
        the queue's hashes and sets, and wake-up tokens: idle workers block on this list."""
        return self.prefix + "intake"

    @property
    def claimed(self) -> str:
        """Intake entries an idle worker's blocking wait took, until its reservation (or any
        script) absorbs them: kept here so that a worker dying in between loses nothing."""
        return self.prefix + "claimed"

    def absorb_keys(self) -> list[str]:
        """The KEYS of absorb (queue/lua/_lib.lua), which scripts that read or change the
        queue take at the end of their own."""
        return [self.job_prefix, self.intake, self.claimed, self.queued, self.all_jobs,
                self.sequence]

    @property
    def paused(self) -> str:
        """Present while the queue is paused (workers reserve none of its jobs); its value is
        when the pause began (ms)."""
        return self.prefix + "paused"

    @property
    def stats(self) -> str:
        return self.prefix + "stats"

    @property
    def history_prefix(self) -> str:
        """Prefix of the history buckets (docworkers.queue.history): the scripts that finish
        jobs append ``h:<hour>``, ``d:<day>`` (epoch hour / day numbers, UTC) and ``all``."""
        return self.prefix + "hist:"

    def history_hour(self, hour: int) -> str:
        """Per-minute counts and durations of epoch hour ``hour`` (expires a day after it)."""
        return f"{self.history_prefix}h:{hour}"

    def history_day(self, day: int) -> str:
        """Durations and failures by type of epoch day ``day`` (expires 29 days after it)."""
        return f"{self.history_prefix}d:{day}"

    @property
    def history_all(self) -> str:
        """Durations and failures by type since the queue began (for /metrics' counters)."""
        return self.history_prefix + "all"

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

    def schedule(self, name: str) -> str:
        """The last tick of schedule ``name`` claimed by a scheduler (epoch ms)."""
        return self.prefix + "sched:" + name + ":last"

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


def rate_limit_key(name: str, namespace: str = "dw") -> str:
    """The token bucket of the cluster-wide rate limit ``name``."""
    return f"{namespace}:{{ratelimit:{name}}}:bucket"


def concurrency_key(name: str, namespace: str = "dw") -> str:
    """The leased slots of the cluster-wide concurrency limit ``name``."""
    return f"{namespace}:{{concurrency:{name}}}:holders"


@dataclass(frozen=True, slots=True)
class RegistryKeys:
    """All key names of one registry namespace, under the hash tag ``{<tag>}``.

    A registry keeps records (hashes) grouped in named collections, and next to them the keys
    that let job attempts write them safely: a fence per job, and per collection an alias, a
    lock and a version counter. They share one tag so a script may check a fence and write a
    record, or switch an alias under a lock, in one atomic step.
    """

    tag: str
    namespace: str = "dw"

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:{{{self.tag}}}:"

    @property
    def record_prefix(self) -> str:
        """Prefix of the record hashes; scripts that walk a collection append the ids."""
        return self.prefix + "doc:"

    def record(self, record_id: str) -> str:
        return self.record_prefix + record_id

    def collection(self, name: str) -> str:
        """The index of collection ``name``: record ids scored by creation time."""
        return self.prefix + "collection:" + name

    @property
    def collections(self) -> str:
        """The names of all collections (a set)."""
        return self.prefix + "collections"

    def fence(self, queue: str, job_id: str) -> str:
        """The fence of a job of ``queue``: the fencing token of its newest attempt."""
        return self.prefix + "fence:" + queue + ":" + job_id

    def alias(self, collection: str) -> str:
        """The physical collection that holds ``collection`` now (none: the name itself)."""
        return self.prefix + "alias:" + collection

    def lock(self, collection: str) -> str:
        """The owner of the rebuild (or drop) of ``collection``."""
        return self.prefix + "lock:" + collection

    def version(self, collection: str) -> str:
        """The last physical version of ``collection`` reserved by a rebuild."""
        return self.prefix + "version:" + collection
