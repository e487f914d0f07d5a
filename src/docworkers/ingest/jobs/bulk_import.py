"""The ``bulk_import`` job: fan a folder, a zip archive or a list of files out into uploads.

The parent job stores every document (see :mod:`docworkers.ingest.stored_files`), enqueues one
``document_upload`` child per document on the upload workers' queue, then follows the children
until all of them are finished, reporting the share finished as its own progress. Child ids are
``<parent id>:<n>`` in a stable order and enqueueing an existing id is a no-op, so a rerun of
the parent (after a crash, a lost lease) follows the same children instead of adding new ones.
Each child carries the tag ``parent:<parent id>``. Cancelling the parent cancels the children
that have not finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from docworkers.errors import (
    ConfigurationError,
    InvalidJobIdError,
    InvalidPayloadError,
    InvalidStateError,
    JobCancelledError,
    JobNotFoundError,
    PermanentJobError,
)
from docworkers.ingest.jobs.children import child_upload, parent_tag
from docworkers.ingest.jobs.common import JobPayload, LogicalCollection, Progress, no_progress
from docworkers.ingest.jobs.kinds import BULK_IMPORT_JOB_TYPE
from docworkers.ingest.payload import UploadJobPayload, UploadOptions
from docworkers.ingest.stored_files import (
    Collected,
    ImportLimits,
    collect_archive,
    collect_files,
    collect_folder,
    local_path,
)
from docworkers.queue.job import Job, JobStatus
from docworkers.queue.protocol import JobRepository
from docworkers.queue.spec import JobSpec
from docworkers.workers.base import BaseWorker
from docworkers.workers.config import WorkerConfig
from docworkers.workers.context import JobContext

__all__ = [
    "BULK_IMPORT_JOB_TYPE",
    "BulkImport",
    "BulkImportPayload",
    "BulkImportResult",
    "BulkImportWorker",
    "BulkImportWorkerConfig",
    "parent_tag",
]

MAX_LISTED = 100  # failures and skipped files listed in the result; the counts are complete


class BulkImportPayload(JobPayload, UploadOptions):
    """A folder, a ``.zip`` archive or a list of files (paths or ``file://`` URIs), and the
    upload options every child gets."""

    source: str | list[str]
    collection: LogicalCollection

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("give a folder, a .zip archive or at least one file")
        if any(not item.strip() or "\x00" in item for item in items):
            raise ValueError("paths must be non-empty and contain no NUL character")
        return value

    def upload_options(self) -> dict[str, Any]:
        return self.model_dump(exclude={"source"})

    def check(self) -> None:
        # The upload payload owns the rules of its options (strategy names, overlap < size):
        # check them once here instead of failing every child.
        UploadJobPayload.parse({"filename": "check.txt", "file_path": "check.txt",
                                **self.upload_options()})


class ChildFailure(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    filename: str
    status: str
    code: str
    message: str


class SkippedFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    reason: str


class BulkImportResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    collection: str
    total: int  # child upload jobs
    succeeded: int
    failed: int
    skipped: int  # files passed over before enqueueing (see skipped_files)
    failures: list[ChildFailure] = Field(default_factory=list)
    skipped_files: list[SkippedFile] = Field(default_factory=list)
    processing_time_ms: int = 0


class ChildQueue(Protocol):
    """What a bulk import needs of the upload workers' queue (RedisJobRepository has it)."""

    @property
    def queue(self) -> str: ...

    async def enqueue_many(self, specs: Iterable[JobSpec]) -> list[str]: ...

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]: ...

    async def cancel(self, job_id: str) -> str: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class BulkImportWorkerConfig:
    """A WorkerConfig, the queue bulk imports arrive on, and the upload workers' queue.

    The two queues must differ: a worker reserves whatever job is next on its queue, and one
    that does not handle the type fails it.
    """

    worker: WorkerConfig
    job_repo: JobRepository
    upload_repo: ChildQueue
    storage_dir: Path
    limits: ImportLimits = field(default_factory=ImportLimits)
    poll_interval: float = 1.0
    logger: logging.Logger | None = None

    def __post_init__(self) -> None:
        if self.upload_repo.queue == self.job_repo.queue:
            raise ConfigurationError(
                "upload_repo", f"must be another queue than the bulk imports' own "
                f"({self.job_repo.queue!r}): the upload workers' queue",
            )
        if not self.poll_interval > 0:
            raise ConfigurationError("poll_interval", f"must be positive, got "
                                     f"{self.poll_interval!r}")


class BulkImport:
    """Runs one bulk import: store, enqueue the children, follow them to the end."""

    def __init__(self, config: BulkImportWorkerConfig) -> None:
        self.config = config
        self.uploads = config.upload_repo

    async def run(self, payload: BulkImportPayload, *, job_id: str,
                  progress: Progress = no_progress, priority: int = 0,
                  user_id: str | None = None) -> BulkImportResult:
        started = time.perf_counter()
        await progress(1, "collecting documents")
        found = await asyncio.to_thread(self._collect, payload.source)
        specs = self._children(payload, found, job_id, priority, user_id)
        ids = [spec.job_id for spec in specs if spec.job_id]
        await progress(5, f"enqueueing {len(ids)} upload jobs")
        await self.uploads.enqueue_many(specs)
        try:
            children = await self._follow(ids, progress)
        except JobCancelledError:
            await asyncio.shield(self._cancel(ids))
            raise
        failures = [_failure(child_id, job) for child_id, job in children.items()
                    if job is None or job.status != JobStatus.COMPLETED]
        await progress(100, f"{len(ids) - len(failures)} of {len(ids)} documents imported")
        return BulkImportResult(
            collection=payload.collection, total=len(ids), succeeded=len(ids) - len(failures),
            failed=len(failures), skipped=len(found.skipped), failures=failures[:MAX_LISTED],
            skipped_files=[SkippedFile(name=s.name, reason=s.reason)
                           for s in found.skipped[:MAX_LISTED]],
            processing_time_ms=round((time.perf_counter() - started) * 1000),
        )

    def _collect(self, source: str | list[str]) -> Collected:
        storage, limits = self.config.storage_dir, self.config.limits
        if isinstance(source, list):
            return collect_files(source, storage, limits)
        path = local_path(source)
        if path is None:
            raise InvalidPayloadError(f"source: unsupported URI {source!r}; use a local path "
                                      "or file:// on storage the workers share")
        if path.is_dir():
            return collect_folder(path, storage, limits)
        if path.is_file() and path.suffix.lower() == ".zip":
            return collect_archive(path, storage, limits)
        if path.is_file():
            return collect_files([source], storage, limits)
        raise InvalidPayloadError(f"source: no file or folder at {str(path)!r}")

    def _children(self, payload: BulkImportPayload, found: Collected, parent_id: str,
                  priority: int, user_id: str | None) -> list[JobSpec]:
        options = payload.upload_options()
        specs = []
        for n, stored in enumerate(found.files):
            try:
                specs.append(child_upload(
                    parent_id, n, filename=stored.filename, path=stored.path, size=stored.size,
                    options=options, priority=priority, user_id=user_id))
            except InvalidJobIdError as exc:
                raise PermanentJobError(f"job id {parent_id!r} is too long to number its "
                                        f"children ({exc})") from exc
        return specs

    async def _follow(self, ids: Sequence[str], progress: Progress) -> dict[str, Job | None]:
        """Poll the unfinished children until each is terminal or gone (None), in id order."""
        finished: dict[str, Job | None] = {}
        waiting = list(ids)
        while True:
            current = {job.id: job for job in await self.uploads.get_jobs(waiting)}
            for job_id in waiting:
                job = current.get(job_id)
                if job is None or job.is_terminal:
                    finished[job_id] = job
            waiting = [job_id for job_id in waiting if job_id not in finished]
            failed = sum(1 for job in finished.values()
                         if job is None or job.status != JobStatus.COMPLETED)
            percent = 5 + (94 * len(finished)) // len(ids) if ids else 99
            await progress(percent, f"{len(finished)}/{len(ids)} documents finished "
                                    f"({failed} failed)")
            if not waiting:
                return {job_id: finished[job_id] for job_id in ids}
            await asyncio.sleep(self.config.poll_interval)

    async def _cancel(self, ids: Sequence[str]) -> None:
        for job in await self.uploads.get_jobs(ids):
            if not job.is_terminal:
                with contextlib.suppress(JobNotFoundError, InvalidStateError):
                    await self.uploads.cancel(job.id)


def _failure(job_id: str, job: Job | None) -> ChildFailure:
    if job is None:
        return ChildFailure(job_id=job_id, filename="", status="missing", code="missing",
                            message="the child job no longer exists (deleted or expired)")
    error = job.error
    return ChildFailure(
        job_id=job_id, filename=str(job.payload.get("filename", "")), status=job.status.value,
        code=error.code if error else job.status.value,
        message=error.message if error else f"the upload ended {job.status.value}",
    )


class BulkImportWorker(BaseWorker):
    """Runs ``bulk_import`` jobs; UploadWorkers on ``upload_repo``'s queue run the children."""

    job_types: ClassVar[frozenset[str] | None] = frozenset({BULK_IMPORT_JOB_TYPE})

    def __init__(self, config: BulkImportWorkerConfig) -> None:
        super().__init__(config.worker, job_repo=config.job_repo, logger=config.logger)
        self.bulk_import = BulkImport(config)

    async def process(self, job: Job, ctx: JobContext) -> Any:
        payload = BulkImportPayload.parse(job.payload)
        result = await self.bulk_import.run(payload, job_id=job.id, progress=ctx.progress,
                                            priority=job.priority, user_id=job.user_id)
        ctx.logger.info("bulk import into %s: %d ok, %d failed, %d skipped",
                        payload.collection, result.succeeded, result.failed, result.skipped)
        return result.model_dump()
