"""``docworkers ingest``: store documents, enqueue upload jobs, and (by default) wait for them.

Every option is checked first, as the API checks an upload; nothing is stored or queued when
one is wrong. With ``--wait`` a live board shows each document's stage until its job is over,
then a summary; the command exits non-zero if any document failed. The jobs are left to a
worker that serves the upload queue if one is running; otherwise a local worker runs them here,
taking only this command's jobs: other clients' jobs on a shared queue are never touched (see
:mod:`~docworkers.cli.own_jobs`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from docworkers.cli.context import (
    EXIT_FAILURE,
    CliState,
    UsageError,
    state_of,
    with_runtime,
)
from docworkers.cli.files import (
    DOCUMENT_EXTENSIONS,
    Discovery,
    StoredFile,
    bare_filename,
    discover,
    store,
)
from docworkers.cli.options import (
    ChunkOverlapOption,
    ChunkSizeOption,
    CollectionOption,
    ExtractMetadataOption,
    OcrOption,
    StrategyOption,
)
from docworkers.cli.render import duration, esc, plural, size, styled_status
from docworkers.errors import DocworkersError
from docworkers.ingest.defaults import DEFAULT_OCR, DEFAULT_STRATEGY
from docworkers.ingest.jobs.kinds import UPLOAD_JOB_TYPE

if TYPE_CHECKING:
    from concurrent.futures import Future

    from docworkers.ingest.embedding import Embedder
    from docworkers.ingest.parsing import IsolatedParser
    from docworkers.queue import Job, JobSpec
    from docworkers.runtime import Runtime
    from docworkers.settings import Settings

POLL_INTERVAL = 0.2  # seconds between two looks at the jobs' state (less when one ends here)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """How to ingest: the upload payload's options plus the job priority."""

    collection: str = "documents"
    strategy: str = DEFAULT_STRATEGY
    chunk_size: int | None = None  # None: the embedder's window (resolve with sized())
    chunk_overlap: int = 0
    extract_metadata: bool = False
    questions: int = 0
    max_pages: int = 0
    priority: int = 0
    ocr: str = DEFAULT_OCR

    def sized(self, window: int) -> IngestOptions:
        """These options with the chunk size ``window`` (the embedder's) if none was given."""
        return self if self.chunk_size is not None else dataclasses.replace(self,
                                                                           chunk_size=window)

    def payload(self, stored: StoredFile) -> dict[str, Any]:
        """The upload payload of ``stored`` (without a chunk size until :meth:`sized`)."""
        payload = {
            "filename": stored.filename, "file_path": str(stored.path),
            "file_size": stored.size, "collection": self.collection,
            "chunking_strategy": self.strategy, "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap, "extract_metadata": self.extract_metadata,
            "num_questions": self.questions, "max_pages": self.max_pages, "ocr": self.ocr,
        }
        return {name: value for name, value in payload.items() if value is not None}

    def validate(self, settings: Settings) -> None:
        """Check the options before anything is stored or enqueued, as the API checks an
        upload (the chunk size against the embedder's window too); UsageError if wrong."""
        from docworkers.cli.checks import check_job

        probe = StoredFile(Path("probe.txt"), "probe.txt", Path("/probe.txt"), 0, "")
        check_job(settings, UPLOAD_JOB_TYPE, self.payload(probe), priority=self.priority)


@dataclass(slots=True)
class Outcome:
    """What became of one document."""

    filename: str
    status: str  # ok, failed, cancelled, rejected, queued
    job_id: str = ""
    document_id: str = ""
    chunks: int | None = None
    pages: int | None = None
    seconds: float | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "queued")


async def ingest_documents(runtime: Runtime, state: CliState, discovery: Discovery,
                           options: IngestOptions, *, wait: bool) -> list[Outcome]:
    """Store, enqueue and (with ``wait``) process the discovered documents."""
    from docworkers.cli.own_jobs import live_worker
    from docworkers.queue import JobSpec

    options = options.sized(runtime.embedder_window)
    uploads = runtime.queues.for_type(UPLOAD_JOB_TYPE)
    await uploads.ping()
    if wait and await live_worker(uploads) is None:
        # Processing here: fail now, not after every document has used up its retries. (With
        # a live worker, the vector store is its business; an embedded one is locked by it.)
        await asyncio.to_thread(runtime.vectors.ping)
    try:
        storage = runtime.storage_dir()
    except OSError as exc:
        raise DocworkersError(f"cannot create DOCWORKERS_STORAGE_DIR "
                              f"({runtime.settings.storage_dir}): {exc.strerror or exc}") from exc
    outcomes: list[Outcome] = []
    specs: list[JobSpec] = []
    stored_files: list[StoredFile] = []
    limit = runtime.settings.max_upload_bytes
    for path in discovery.documents:
        try:
            file_size = path.stat().st_size
            if file_size > limit:
                outcomes.append(Outcome(bare_filename(path), "rejected", reason=(
                    f"too_large: {size(file_size)} is over DOCWORKERS_MAX_UPLOAD_BYTES "
                    f"({size(limit)})")))
                continue
            stored = await asyncio.to_thread(store, path, storage)
        except OSError as exc:
            if exc.filename not in (None, str(path)):
                raise DocworkersError(f"cannot write to DOCWORKERS_STORAGE_DIR "
                                      f"({storage.resolve()}): {exc.strerror or exc}") from exc
            outcomes.append(Outcome(bare_filename(path), "rejected",
                                    reason=f"unreadable: {exc.strerror or exc}"))
            continue
        stored_files.append(stored)
        specs.append(JobSpec(UPLOAD_JOB_TYPE, options.payload(stored),
                             priority=options.priority, tags=("cli",)))
    job_ids = await uploads.enqueue_many(specs)
    pairs = [(job_id, s.filename) for job_id, s in zip(job_ids, stored_files, strict=True)]
    if not wait:
        return outcomes + [Outcome(name, "queued", job_id=job_id) for job_id, name in pairs]
    if pairs:
        jobs = await _process_here(runtime, state, pairs)
        outcomes += [_outcome(name, jobs.get(job_id)) for job_id, name in pairs]
    return outcomes


async def _process_here(runtime: Runtime, state: CliState, pairs: list[tuple[str, str]]
                        ) -> dict[str, Job | None]:
    """Get the jobs in ``pairs`` done, by a live worker or a local one that takes only them
    (see :mod:`~docworkers.cli.own_jobs`), showing their progress; return their last state."""
    from docworkers.cli.own_jobs import OwnJobs, local_worker, over
    from docworkers.cli.progress import IngestBoard
    from docworkers.runtime import worker_name

    uploads = runtime.queues.for_type(UPLOAD_JOB_TYPE)
    ids = [job_id for job_id, _ in pairs]
    async with OwnJobs(state.err) as own:
        own.add(uploads, ids, local_worker(runtime, UPLOAD_JOB_TYPE, worker_name("cli")))
        try:
            await own.tend()
            with IngestBoard(state.err, pairs) as board:
                jobs: dict[str, Job | None] = dict.fromkeys(ids)
                looking = ids  # a job that is over stays as it was last seen
                while True:
                    seen = own.seen()  # before the look: an outcome stored during it wakes
                    found = {job.id: job for job in await uploads.get_jobs(looking)}
                    jobs.update((job_id, found.get(job_id)) for job_id in looking)
                    board.update(jobs)
                    finished = over(jobs)
                    if len(finished) == len(ids):
                        return jobs
                    done = set(finished)
                    looking = [job_id for job_id in ids if job_id not in done]
                    own.finished(finished)
                    await own.tend()
                    await own.wait(seen, POLL_INTERVAL)
        except asyncio.CancelledError:  # Ctrl-C
            if own.processing_here:
                state.err.print(f"[yellow]stopping: documents being processed may take up to "
                                f"{runtime.settings.shutdown_timeout:.0f}s to finish; press "
                                "Ctrl-C again to quit at once[/]")
            raise


def _outcome(filename: str, job: Job | None) -> Outcome:
    from docworkers.cli.progress import chunks_of
    from docworkers.queue import JobStatus

    if job is None:
        return Outcome(filename, "failed", reason="the job disappeared (deleted or expired)")
    result = job.result if isinstance(job.result, dict) else {}
    seconds = result["processing_time_ms"] / 1000 if "processing_time_ms" in result \
        else job.processing_time
    outcome = Outcome(filename, "ok", job_id=job.id, document_id=result.get("document_id", ""),
                      chunks=chunks_of(job), pages=result.get("page_count"), seconds=seconds)
    if job.status != JobStatus.COMPLETED:
        outcome.status = "cancelled" if job.status == JobStatus.CANCELLED else "failed"
        outcome.chunks = None
        error = job.error
        outcome.reason = f"{error.code}: {error.message}" if error else job.status.value
    return outcome


def print_summary(state: CliState, outcomes: list[Outcome], discovery: Discovery,
                  collection: str, elapsed: float) -> None:
    from rich.table import Table

    queued = [o for o in outcomes if o.status == "queued"]
    table = Table(title=f"Ingested into collection {collection!r}" if not queued
                  else f"Queued for collection {collection!r}", title_justify="left")
    table.add_column("Document", overflow="fold")
    table.add_column("Status", no_wrap=True)
    if queued:
        table.add_column("Job / reason", overflow="fold", ratio=1)
    else:
        table.add_column("Chunks", justify="right")
        table.add_column("Pages", justify="right")
        table.add_column("Time", justify="right", no_wrap=True)
        table.add_column("Reason", overflow="fold", ratio=1)
    for o in outcomes:
        if queued:
            table.add_row(esc(o.filename), styled_status(o.status), esc(o.job_id or o.reason))
        else:
            table.add_row(esc(o.filename), styled_status(o.status),
                          "-" if o.chunks is None else str(o.chunks),
                          "-" if o.pages is None else str(o.pages),
                          duration(o.seconds), esc(o.reason))
    state.out.print(table)
    ok = sum(1 for o in outcomes if o.status == "ok")
    bad = sum(1 for o in outcomes if not o.ok)
    chunks = sum(o.chunks or 0 for o in outcomes)
    parts = [f"{len(queued)} queued" if queued else f"{ok} ingested ({plural(chunks, 'chunk')})"]
    if bad:
        parts.append(f"[red]{bad} failed[/]")
    parts.append(f"{len(discovery.skipped)} skipped (not documents)")
    state.out.print(", ".join(parts) + f" in {duration(elapsed)}.")


def ingest_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(
        help="Files or folders (walked recursively) to ingest.", show_default=False)],
    collection: CollectionOption = "documents",
    strategy: StrategyOption = DEFAULT_STRATEGY,
    chunk_size: ChunkSizeOption = None,
    chunk_overlap: ChunkOverlapOption = 0,
    extract_metadata: ExtractMetadataOption = False,
    questions: Annotated[int, typer.Option(min=0, max=10, help=(
        "Questions to generate per chunk."))] = 0,
    max_pages: Annotated[int, typer.Option(min=0, help="Read at most N pages (0: all).")] = 0,
    ocr: OcrOption = DEFAULT_OCR,
    priority: Annotated[int, typer.Option(help="Job priority (higher runs first).")] = 0,
    wait: Annotated[bool, typer.Option(help=(
        "Wait for the documents with live progress: a running worker processes them, or "
        "this command does (--no-wait: only enqueue them for `docworkers worker`; needs "
        "DOCWORKERS_REDIS_URL)."))] = True,
) -> None:
    """Ingest documents: store them, enqueue upload jobs and (by default) wait for them,
    processing them here unless a worker is running.

    Documents are recognised by their extension (pdf, docx, html, htm, md, markdown, txt,
    text, rst, csv, log); other files are skipped and counted. Files are copied into
    DOCWORKERS_STORAGE_DIR, which workers elsewhere must be able to read.
    """
    state = state_of(ctx)
    settings = state.settings
    from docworkers.runtime import embedder_window, start_embedder, start_parser

    # With --wait this command usually processes the documents itself: its parser's child (an
    # interpreter importing every parser) and the model start now, beside this process's own
    # start-up, instead of when the first document needs them. Unused if a worker takes the
    # jobs.
    parser = start_parser(settings) if wait else None
    embedder = start_embedder(settings) if wait else None
    try:
        options = IngestOptions(collection, strategy, chunk_size, chunk_overlap,
                                extract_metadata, questions, max_pages, priority, ocr
                                ).sized(embedder_window(settings))
        options.validate(settings)
        discovery = discover(paths)
        outcomes = run_ingest(state, settings, discovery, options, wait=wait, parser=parser,
                              embedder=embedder)
    finally:
        if parser is not None:
            parser.close()  # idempotent: the runtime closed it unless it never got it
    if any(not o.ok for o in outcomes):
        raise typer.Exit(EXIT_FAILURE)


def run_ingest(state: CliState, settings: Settings, discovery: Discovery,
               options: IngestOptions, *, wait: bool,
               parser: IsolatedParser | None = None,
               embedder: Future[Embedder] | None = None) -> list[Outcome]:
    """Report what was found, ingest it on a fresh Runtime (given ``parser`` and ``embedder``,
    see :func:`~docworkers.cli.context.with_runtime`), print the summary."""
    announce(state, discovery)
    started = time.monotonic()

    async def action(runtime: Runtime) -> list[Outcome]:
        return await ingest_documents(runtime, state, discovery, options, wait=wait)

    outcomes = with_runtime(settings, action, parser=parser, embedder=embedder)
    print_summary(state, outcomes, discovery, options.collection, time.monotonic() - started)
    return outcomes


def announce(state: CliState, discovery: Discovery) -> None:
    found = len(discovery.documents)
    skipped = len(discovery.skipped)
    if not found:
        raise UsageError(
            f"no documents to ingest ({skipped} file(s) skipped: not documents). Documents "
            f"have one of these extensions: {' '.join(sorted(DOCUMENT_EXTENSIONS))}")
    note = f", skipping {skipped} that are not documents" if skipped else ""
    state.err.print(f"Found {plural(found, 'document')}{note}.")
