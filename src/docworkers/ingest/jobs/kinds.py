"""The document job types, what front doors need to know of each, and the queue each runs on.

A worker reserves whatever job is next on its queue and fails a type it does not handle, so
each job type has a queue of its own, derived from a *base* queue (``DOCWORKERS_QUEUE``):
``document_upload`` keeps the base queue itself (so uploads enqueued before the other types
existed still run), every other type goes to ``<base>.<type>``, e.g. ``default.bulk_import``.
Everything that enqueues, works on or looks up these jobs goes through :func:`queue_for`.

This module imports nothing heavy: the command line builds its options and ``--help`` from it.
Payload validation is in :mod:`~.routing`, reading across the queues in :mod:`~.queues`.
"""

from __future__ import annotations

from dataclasses import dataclass

from docworkers.errors import ConfigurationError

__all__ = [
    "BULK_IMPORT_JOB_TYPE",
    "COLLECTION_DELETE_JOB_TYPE",
    "DOCUMENT_DELETE_JOB_TYPE",
    "JOB_KINDS",
    "JOB_TYPES",
    "METADATA_EXTRACT_JOB_TYPE",
    "UPLOAD_JOB_TYPE",
    "VECTOR_REINDEX_JOB_TYPE",
    "JobKind",
    "job_kind",
    "queue_for",
]

UPLOAD_JOB_TYPE = "document_upload"
DOCUMENT_DELETE_JOB_TYPE = "document_delete"
COLLECTION_DELETE_JOB_TYPE = "collection_delete"
METADATA_EXTRACT_JOB_TYPE = "metadata_extract"
VECTOR_REINDEX_JOB_TYPE = "vector_reindex"
BULK_IMPORT_JOB_TYPE = "bulk_import"

SEPARATOR = "."


@dataclass(frozen=True, slots=True)
class JobKind:
    """What the front doors need to know about one job type."""

    name: str
    needs_model: bool  # the worker loads the embedding model / parser (DocumentServices)
    needs_registry: bool  # reads the document registry: pointless on a private, empty Redis
    names_server_paths: bool  # the payload names files on the workers' disks
    concurrency: int | None  # default jobs at once per worker; None: DOCWORKERS_CONCURRENCY


# Uploads are the traffic; the others are rare, and reindex / extraction share the model with
# the uploads, so one at a time per worker process unless asked otherwise.
JOB_KINDS: dict[str, JobKind] = {kind.name: kind for kind in (
    JobKind(UPLOAD_JOB_TYPE, needs_model=True, needs_registry=False, names_server_paths=True,
            concurrency=None),
    JobKind(DOCUMENT_DELETE_JOB_TYPE, needs_model=False, needs_registry=True,
            names_server_paths=False, concurrency=1),
    JobKind(COLLECTION_DELETE_JOB_TYPE, needs_model=False, needs_registry=False,
            names_server_paths=False, concurrency=1),
    JobKind(METADATA_EXTRACT_JOB_TYPE, needs_model=True, needs_registry=True,
            names_server_paths=False, concurrency=1),
    JobKind(VECTOR_REINDEX_JOB_TYPE, needs_model=True, needs_registry=True,
            names_server_paths=False, concurrency=1),
    JobKind(BULK_IMPORT_JOB_TYPE, needs_model=False, needs_registry=False,
            names_server_paths=True, concurrency=1),
)}
JOB_TYPES: tuple[str, ...] = tuple(JOB_KINDS)


def job_kind(job_type: str) -> JobKind:
    """The JobKind of ``job_type``; ConfigurationError (field ``type``) if there is none."""
    kind = JOB_KINDS.get(job_type)
    if kind is None:
        raise ConfigurationError("type", f"unknown job type {job_type!r}; use one of "
                                         f"{', '.join(JOB_TYPES)}")
    return kind


def queue_for(job_type: str, base: str) -> str:
    """The queue ``job_type`` runs on for the base queue ``base``."""
    from docworkers.queue.redis.keys import validate_queue_name  # the queue package loads redis

    validate_queue_name(base)
    job_kind(job_type)
    if job_type == UPLOAD_JOB_TYPE:
        return base
    name = f"{base}{SEPARATOR}{job_type}"
    try:
        return validate_queue_name(name)
    except ConfigurationError:
        raise ConfigurationError(
            "queue", f"{base!r} is too long to be a base queue: the {job_type} jobs would need "
            f"the queue {name!r}, over 128 characters",
        ) from None
