"""What a producer sends to Redis and how it reads the replies, without the I/O.

Jobs are enqueued and cancelled by two clients that must agree exactly: the asyncio
:class:`~docworkers.queue.repository.RedisJobRepository` and the synchronous
:class:`~docworkers.queue.sync_producer.SyncJobProducer`. Both run enqueue.lua and cancel.lua
with the keys and arguments built here, and read the replies here, so a worker cannot tell which
of them made a job, and a change to a script's arguments is made once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from docworkers.errors import InvalidStateError, JobNotFoundError
from docworkers.queue.redis.keys import QueueKeys, validate_job_id

__all__ = ["ENQUEUE_BATCH", "cancel_keys", "cancel_outcome", "enqueue_batches", "enqueue_keys",
           "job_not_found"]

ENQUEUE_BATCH = 500  # jobs per enqueue.lua call: big enough to amortise, small enough for Lua


def enqueue_keys(keys: QueueKeys) -> list[str]:
    """enqueue.lua's KEYS, in its order."""
    return [keys.job_prefix, keys.queued, keys.scheduled, keys.pending, keys.all_jobs,
            keys.sequence, keys.intake, *keys.absorb_keys()]


def enqueue_batches(encoded: Sequence[tuple[str, ...]], notify_cap: int) -> list[list[Any]]:
    """enqueue.lua's ARGV for each call that stores ``encoded`` jobs (each job's
    :meth:`JobSpec.script_args`), at most :data:`ENQUEUE_BATCH` jobs per call, in order."""
    batches: list[list[Any]] = []
    for start in range(0, len(encoded), ENQUEUE_BATCH):
        batch = encoded[start : start + ENQUEUE_BATCH]
        args: list[Any] = [len(batch), notify_cap]
        for job_args in batch:
            args.extend(job_args)
        batches.append(args)
    return batches


def cancel_keys(keys: QueueKeys, job_id: str) -> list[str]:
    """cancel.lua's KEYS for ``job_id`` (validated: it becomes part of a key); ARGV is
    ``[job_id]``."""
    validate_job_id(job_id)
    return [keys.job(job_id), keys.pending, keys.queued, keys.scheduled, keys.cancelled,
            keys.events(job_id), *keys.absorb_keys()]


def cancel_outcome(reply: str, job_id: str, queue: str) -> str:
    """What cancel.lua's ``reply`` means: 'cancelled' (it was waiting) or 'requested' (it is
    running and stops at its next progress call or heartbeat); an error for anything else."""
    if not reply:
        raise job_not_found(job_id, queue)
    if reply not in ("cancelled", "requested"):
        raise InvalidStateError(f"job {job_id!r} is {reply}; nothing to cancel")
    return str(reply)


def job_not_found(job_id: str, queue: str) -> JobNotFoundError:
    return JobNotFoundError(f"no job {job_id!r} in queue {queue!r}")
