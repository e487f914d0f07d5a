"""The document job types: their names, what front doors need to know of each, their queues.

A worker reserves whatever job is next on its queue and fails a type it does not handle, so
each job type runs on a queue of its own of a *base* queue (``DOCWORKERS_QUEUE``), as
:class:`~docworkers.queue.routing.QueueRouter` derives it: ``document_upload`` keeps the base
queue itself (so uploads enqueued before the other types existed still run), every other type
goes to ``<base>.<type>``, e.g. ``default.bulk_import``. Everything that enqueues, works on or
looks up these jobs goes through :func:`router` (or :func:`queue_for`).

This module imports nothing heavy: the command line builds its options and ``--help`` from it.
Each type's payload model is in :mod:`~.payloads`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from docworkers.errors import ConfigurationError

if TYPE_CHECKING:
    from docworkers.queue.routing import QueueRouter

__all__ = [
    "BULK_IMPORT_JOB_TYPE",
    "COLLECTION_DELETE_JOB_TYPE",
    "DOCUMENT_DELETE_JOB_TYPE",
    "JOB_KINDS",
    "JOB_TYPES",
    "METADATA_EXTRACT_JOB_TYPE",
    "ROUTED_TYPES",
    "UPLOAD_JOB_TYPE",
    "VECTOR_REINDEX_JOB_TYPE",
    "JobKind",
    "job_kind",
    "queue_for",
    "router",
]

UPLOAD_JOB_TYPE = "document_upload"
DOCUMENT_DELETE_JOB_TYPE = "document_delete"
COLLECTION_DELETE_JOB_TYPE = "collection_delete"
METADATA_EXTRACT_JOB_TYPE = "metadata_extract"
VECTOR_REINDEX_JOB_TYPE = "vector_reindex"
BULK_IMPORT_JOB_TYPE = "bulk_import"


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


#: The types that run on a queue of their own; uploads keep the base queue.
ROUTED_TYPES: tuple[str, ...] = tuple(t for t in JOB_TYPES if t != UPLOAD_JOB_TYPE)


def router(base: str) -> QueueRouter:
    """The queues of the document job types for the base queue ``base``."""
    from docworkers.queue.routing import QueueRouter  # the queue package loads redis

    return QueueRouter(base, ROUTED_TYPES, known=JOB_TYPES)


def queue_for(job_type: str, base: str) -> str:
    """The queue ``job_type`` runs on for the base queue ``base``; ConfigurationError naming
    ``type`` for an unknown type, ``queue`` for a base too long to derive the name from."""
    return router(base).queue_for(job_type)
