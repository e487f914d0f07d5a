"""An email's attachments become child uploads of the email's job.

The parser saved each attachment of a supported type beside the stored email as
``<sha256><suffix>`` and listed it in the document's ``metadata["attachments"]``
(:mod:`~docworkers.ingest.parsing.mail`). After the email itself is stored, its worker enqueues
one ``document_upload`` child per saved attachment, as a bulk import does
(:mod:`~docworkers.ingest.jobs.children`): ids ``<email job id>:<n>`` by the attachment's place
in the email, so a rerun of the email's job enqueues nothing new. The email's job does not wait
for them: they run on the same queue, and a worker with one slot would wait for itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from docworkers.errors import InvalidJobIdError
from docworkers.ingest.jobs.children import child_upload
from docworkers.ingest.parsing.mail import stored_name
from docworkers.ingest.payload import UploadJobPayload
from docworkers.queue.job import Job
from docworkers.queue.spec import JobSpec

log = logging.getLogger("docworkers.ingest")


class ChildEnqueuer(Protocol):
    async def enqueue_many(self, specs: list[JobSpec]) -> list[str]: ...


async def enqueue_attachments(
    queue: ChildEnqueuer, job: Job, payload: UploadJobPayload, metadata: Mapping[str, Any]
) -> list[str]:
    """Enqueue the saved attachments listed in ``metadata``; returns the child job ids."""
    entries = metadata.get("attachments")
    if not isinstance(entries, list):
        return []
    directory = payload.path.expanduser().resolve().parent
    options = payload.model_dump(exclude={"filename", "file_path", "file_size"})
    specs: list[JobSpec] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("skipped") or not entry.get("sha256"):
            continue
        path = directory / stored_name(str(entry["sha256"]), str(entry["filename"]))
        if not path.is_file():
            log.warning("attachment %s of %s was not saved; not ingested", entry["filename"],
                        payload.filename)
            continue
        try:
            specs.append(child_upload(
                job.id, n, filename=str(entry["filename"]), path=path,
                size=int(entry.get("size", 0)), options=options, priority=job.priority,
                user_id=job.user_id,
            ))  # fmt: skip
        except InvalidJobIdError:
            log.warning("attachments of %s not ingested: the job id %r is too long to number "
                        "children (emails attached to emails, many levels deep)",
                        payload.filename, job.id)  # fmt: skip
            return []
    if specs:
        await queue.enqueue_many(specs)
    return [spec.job_id for spec in specs if spec.job_id]
