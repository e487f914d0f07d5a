"""Child upload jobs: how a bulk import and an email fan their documents out.

A child's id is ``<parent id>:<n>`` in a stable order and enqueueing an existing id is a
no-op, so a parent that runs twice follows the same children instead of adding new ones. Each
child carries the tag ``parent:<parent id>`` (``JobFilter(tags=...)`` finds them) and the
parent's upload options.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.queue.redis.keys import validate_job_id
from docworkers.queue.spec import JobSpec


def parent_tag(parent_id: str) -> str:
    """The tag every child of a bulk import or an email carries."""
    return f"parent:{parent_id}"


def child_upload(
    parent_id: str, n: int, *, filename: str, path: Path, size: int,
    options: Mapping[str, Any], priority: int = 0, user_id: str | None = None,
) -> JobSpec:  # fmt: skip
    """The ``n``-th child upload of ``parent_id``; InvalidJobIdError if the id gets too long."""
    child_id = f"{parent_id}:{n}"
    validate_job_id(child_id)
    return JobSpec(
        UPLOAD_JOB_TYPE,
        {"filename": filename, "file_path": str(path), "file_size": size, **options},
        job_id=child_id, priority=priority, user_id=user_id, tags=[parent_tag(parent_id)],
    )  # fmt: skip
