"""``docworkers jobs submit``, ``import`` and ``collections reindex``: queue a document job, and
maybe see it done.

Every option and payload field is checked before anything is enqueued, as the API checks them
(a chunk size against the embedder's window too): a wrong one is a usage error naming it. The
job goes to the type's queue (:mod:`docworkers.ingest.jobs.kinds`). Without ``--wait`` the
command returns the job id. With it (the default of ``import``, as of ``ingest``) it gets the
job done as ``docworkers ingest`` does: a live worker of the job's queue runs it if there is
one, else a local worker that takes only this job (and a bulk import's own uploads), never
another client's (:mod:`~docworkers.cli.own_jobs`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from docworkers.cli.checks import OPTION_NAMES, check_job
from docworkers.cli.context import (
    EXIT_FAILURE,
    CliState,
    UsageError,
    state_of,
    with_runtime,
)
from docworkers.cli.jobs import print_job
from docworkers.cli.options import (
    ChunkOverlapOption,
    ChunkSizeOption,
    CollectionOption,
    ExtractMetadataOption,
    JsonOption,
    OcrOption,
    PriorityOption,
    StrategyOption,
    WaitOption,
)
from docworkers.cli.render import echo_json, esc
from docworkers.errors import DocworkersError
from docworkers.ingest.defaults import DEFAULT_OCR, DEFAULT_STRATEGY
from docworkers.ingest.jobs.kinds import (
    BULK_IMPORT_JOB_TYPE,
    JOB_TYPES,
    UPLOAD_JOB_TYPE,
    VECTOR_REINDEX_JOB_TYPE,
    queue_for,
)

if TYPE_CHECKING:
    from docworkers.cli.own_jobs import OwnJobs
    from docworkers.queue import Job, RedisJobRepository
    from docworkers.queue.repository import RestrictedJobRepository
    from docworkers.runtime import Runtime

POLL_INTERVAL = 0.2  # seconds between two looks at the job
CHILDREN_INTERVAL = 1.0  # seconds between two looks for a bulk import's upload jobs


def submit_job(state: CliState, job_type: str, payload: dict[str, Any], *, priority: int,
               wait: bool, as_json: bool, options: Mapping[str, str] | None = None) -> None:
    """Check, enqueue and (with ``wait``) see one job done. ``options``
    name the command's option of each payload field it built (None: the payload was given
    whole), for the messages."""
    from docworkers.ingest.jobs.payloads import validate_payload
    from docworkers.queue import JobStatus

    settings = state.settings
    check_job(settings, job_type, payload, priority=priority, options=options)
    data = validate_payload(job_type, payload)

    async def action(runtime: Runtime) -> Job | str:
        if wait:
            return await _run_here(runtime, state, job_type, data, priority)
        return await runtime.submit(job_type, data, priority=priority, tags=["cli"])

    outcome = with_runtime(settings, action)
    if isinstance(outcome, str):
        queue = queue_for(job_type, settings.queue)
        if as_json:
            echo_json({"job_id": outcome, "type": job_type, "queue": queue,
                       "status": "queued"})
        else:
            state.out.print(f"Queued {job_type} job {outcome} on queue {queue!r}; follow it "
                            f"with `docworkers jobs show {outcome}`.")
        return
    print_job(state, outcome, as_json=as_json)
    if outcome.status != JobStatus.COMPLETED:
        raise typer.Exit(EXIT_FAILURE)


async def _run_here(runtime: Runtime, state: CliState, job_type: str, data: dict[str, Any],
                    priority: int) -> Job:
    """Queue the job and follow it while it gets done: by a live worker of its queue, or here
    by a local worker that takes only it (and, for a bulk import, only its uploads)."""
    from docworkers.cli.own_jobs import OwnJobs, local_worker
    from docworkers.runtime import worker_name

    name = worker_name("cli")
    async with OwnJobs(state.err) as own:
        job_id = await runtime.submit(job_type, data, priority=priority, tags=["cli"])
        repo = runtime.queues.for_type(job_type)
        own.add(repo, [job_id], local_worker(runtime, job_type, f"{name}-{job_type}"),
                label=job_type)
        children = None
        if job_type == BULK_IMPORT_JOB_TYPE:
            uploads = runtime.queues.for_type(UPLOAD_JOB_TYPE)
            children = _Children(job_id, uploads, own.add(
                uploads, [], local_worker(runtime, UPLOAD_JOB_TYPE, name),
                label=f"its {UPLOAD_JOB_TYPE} jobs"))
        return await _follow(state, repo, job_id, own, children)


class _Children:
    """The upload jobs of a bulk import, ``<import id>:<n>`` numbered from 0 (see
    :mod:`~docworkers.ingest.jobs.bulk_import`), allowed on the uploads' view as they appear
    and disallowed once over, looked up at most every CHILDREN_INTERVAL."""

    def __init__(self, parent_id: str, uploads: RedisJobRepository,
                 view: RestrictedJobRepository) -> None:
        self.parent_id = parent_id
        self.uploads = uploads
        self.view = view
        self.found = 0  # children 0..found-1 exist
        self._looked = float("-inf")

    async def update(self) -> None:
        if time.monotonic() - self._looked < CHILDREN_INTERVAL:
            return
        self._looked = time.monotonic()
        while True:  # the next ids, a window at a time, until one is missing
            ids = [f"{self.parent_id}:{n}" for n in range(self.found, self.found + 200)]
            present = {job.id for job in await self.uploads.get_jobs(ids)}
            new = [job_id for job_id in ids if job_id in present]
            self.view.allow(new)
            self.found += len(new)
            if len(new) < len(ids):
                break
        waiting = self.view.job_ids
        if waiting:
            jobs = {job.id: job for job in await self.uploads.get_jobs(waiting)}
            self.view.disallow(job_id for job_id in waiting
                               if job_id not in jobs or jobs[job_id].is_terminal)


async def _follow(state: CliState, repo: RedisJobRepository, job_id: str,
                  own: OwnJobs | None = None, children: _Children | None = None) -> Job:
    """Show the job's progress until it is finished (tending ``own`` jobs, if given); its last
    state."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TaskProgressColumn(), TimeElapsedColumn())
    if own is not None:
        await own.tend()  # says now who runs the job, before the progress bar
    with Progress(*columns, console=state.err, transient=True) as progress:
        task = progress.add_task(job_id, total=100)
        while True:
            seen = own.seen() if own is not None else []
            job = await repo.find_job(job_id)
            if job is None:
                raise DocworkersError(f"job {job_id} disappeared (deleted or expired)")
            progress.update(task, completed=job.progress,
                            description=esc(f"{job.type}: {job.message or job.status.value}"))
            if job.is_terminal:
                return job
            if children is not None:
                await children.update()
            if own is not None:
                await own.tend()
                await own.wait(seen, POLL_INTERVAL)
            else:
                await asyncio.sleep(POLL_INTERVAL)


def _chunk_size(state: CliState, given: int | None) -> int:
    """``given``, or the window of the configured embedder (its largest chunk size)."""
    from docworkers.runtime import embedder_window

    return given if given is not None else embedder_window(state.settings)


def _payload(text: str) -> Any:
    """JSON text, or ``@file`` holding it."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"--payload: cannot read {text[1:]!r}: {exc.strerror or exc}"
                             ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--payload is not valid JSON: {exc}") from None




def submit_command(
    ctx: typer.Context,
    job_type: Annotated[str, typer.Argument(
        metavar="TYPE", help=f"The job type: {', '.join(JOB_TYPES)}.")],
    payload: Annotated[str, typer.Option(
        "--payload", "-p", help="The payload: a JSON object, or @FILE holding one. Paths "
        "must be valid where the workers run.")] = "{}",
    priority: PriorityOption = 0,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a job to the queue of its type, for example
    `docworkers jobs submit document_delete -p '{"document_id": "…"}' --wait`.

    The payload is checked first; a wrong field is an error naming it and nothing is queued.
    """
    submit_job(state_of(ctx), job_type, _payload(payload), priority=priority, wait=wait,
               as_json=as_json)


def reindex_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The collection.")],
    strategy: StrategyOption = DEFAULT_STRATEGY,
    chunk_size: ChunkSizeOption = None,
    chunk_overlap: ChunkOverlapOption = 0,
    extract_metadata: Annotated[bool | None, typer.Option(
        "--extract-metadata/--no-extract-metadata",
        help="Store keywords and document metadata (default: as each document had).")
    ] = None,
    questions: Annotated[int | None, typer.Option(min=0, max=10, help=(
        "Questions per chunk (default: as each document had)."))] = None,
    priority: PriorityOption = 0,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Re-chunk and re-embed a collection (a vector_reindex job); searches keep working and
    switch to the new version at once when it is ready. Needs DOCWORKERS_REDIS_URL."""
    state = state_of(ctx)
    payload: dict[str, Any] = {"collection": name, "chunking_strategy": strategy,
                               "chunk_size": _chunk_size(state, chunk_size),
                               "chunk_overlap": chunk_overlap}
    if extract_metadata is not None:
        payload["extract_metadata"] = extract_metadata
    if questions is not None:
        payload["num_questions"] = questions
    submit_job(state, VECTOR_REINDEX_JOB_TYPE, payload, priority=priority, wait=wait,
               as_json=as_json, options={**OPTION_NAMES, "collection": "NAME"})


def import_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(
        help="A folder, a .zip archive, or files.", show_default=False)],
    collection: CollectionOption = "documents",
    strategy: StrategyOption = DEFAULT_STRATEGY,
    chunk_size: ChunkSizeOption = None,
    chunk_overlap: ChunkOverlapOption = 0,
    extract_metadata: ExtractMetadataOption = False,
    ocr: OcrOption = DEFAULT_OCR,
    priority: PriorityOption = 0,
    wait: WaitOption = True,
    as_json: JsonOption = False,
) -> None:
    """Import a folder, a zip archive or files as one bulk_import job: workers store each
    document and fan it out into upload jobs (the import's progress counts them).

    Paths are made absolute here, so workers on this machine (or sharing its disks) can read
    them. To watch each document's stage instead, use `docworkers ingest`.
    """
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    sources = [str(path.resolve()) for path in paths]
    state = state_of(ctx)
    payload: dict[str, Any] = {
        "source": sources[0] if len(sources) == 1 else sources, "collection": collection,
        "chunking_strategy": strategy, "chunk_size": _chunk_size(state, chunk_size),
        "chunk_overlap": chunk_overlap, "extract_metadata": extract_metadata, "ocr": ocr,
    }
    submit_job(state, BULK_IMPORT_JOB_TYPE, payload, priority=priority, wait=wait,
               as_json=as_json, options=OPTION_NAMES)
