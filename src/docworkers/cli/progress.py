"""The live view of ingestion: one bar per document and one overall, fed by polling job state.

The board only reads :class:`~docworkers.queue.Job` snapshots, so it shows the same thing
whether the local worker pool or workers elsewhere process the jobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from docworkers.cli.render import esc, plural

if TYPE_CHECKING:
    from docworkers.queue import Job

MAX_ROWS = 25  # above this many documents, only those being processed get a row
_CHUNKS = re.compile(r"(\d+) chunks")


@dataclass(slots=True)
class _Row:
    task: TaskID
    filename: str
    started: bool = False
    finished: bool = False


class _StateColumn(SpinnerColumn):
    """A spinner while a document is in the works, then ✓ or ✗."""

    def render(self, task: Task) -> RenderableType:
        icon = task.fields.get("icon")
        if icon:
            return Text.from_markup(icon)
        return super().render(task) if task.started else Text(" ")


def chunks_of(job: Job) -> int | None:
    """The chunk count of a job: from its result when done, from its progress message before."""
    if isinstance(job.result, dict) and isinstance(job.result.get("chunk_count"), int):
        return int(job.result["chunk_count"])
    found = _CHUNKS.search(job.message or "")
    return int(found.group(1)) if found else None


def stage_of(job: Job) -> str:
    """What a job is doing, in a few words."""
    from docworkers.queue import JobStatus

    if job.status in (JobStatus.QUEUED, JobStatus.PENDING):
        return "waiting for a worker"
    if job.status == JobStatus.PROCESSING:
        return esc(job.message or "starting")
    if job.status == JobStatus.RETRYING:
        reason = job.error.message if job.error else "a transient error"
        return f"[yellow]will retry (attempt {job.retry_count + 1}) after:[/] {esc(reason)}"
    if job.status == JobStatus.COMPLETED:
        return "[green]done[/]"
    if job.status == JobStatus.CANCELLED:
        return "[magenta]cancelled[/]"
    code = job.error.code if job.error else "error"
    return f"[red]failed ({esc(code)})[/]"


class IngestBoard:
    """A rich Progress showing each job's stage, percent and chunks, plus the overall count."""

    def __init__(self, console: Console, jobs: list[tuple[str, str]]) -> None:
        """``jobs`` are (job id, file name) pairs."""
        self.progress = Progress(
            _StateColumn(),
            TextColumn("{task.description}", table_column=Column(
                no_wrap=True, overflow="ellipsis", max_width=26)),
            BarColumn(bar_width=14),
            TaskProgressColumn(),
            TextColumn("{task.fields[chunks]}", table_column=Column(no_wrap=True, width=10)),
            TextColumn("{task.fields[stage]}", table_column=Column(
                no_wrap=True, overflow="ellipsis", ratio=1, min_width=12)),
            TimeElapsedColumn(),
            console=console,
            expand=True,
            # Rich redraws in a thread of its own, 10 times a second by default: ~1.3 % of the
            # CPU of an `ingest --wait` that the model could use (benchmarks/ingest_throughput).
            refresh_per_second=2,
        )
        self.total = len(jobs)
        compact = len(jobs) > MAX_ROWS
        self.rows: dict[str, _Row] = {}
        for job_id, filename in jobs:
            task = self.progress.add_task(esc(filename), total=100, start=False, chunks="", icon="",
                                          stage="waiting for a worker", visible=not compact)
            self.rows[job_id] = _Row(task, filename)
        self.compact = compact
        self.overall = self.progress.add_task("[bold]all documents[/]", total=len(jobs),
                                              chunks="", stage="", icon="")

    def update(self, jobs: dict[str, Job | None]) -> None:
        """Show the latest snapshot; ``None`` means the job no longer exists."""
        from docworkers.queue import JobStatus

        done = failed = chunks = 0
        for job_id, row in self.rows.items():
            job = jobs.get(job_id)
            if job is None:
                self._finish(row, stage="[red]job disappeared[/]", completed=0, ok=False)
                done += 1
                failed += 1
                continue
            count = chunks_of(job)
            if job.status == JobStatus.COMPLETED:
                chunks += count or 0
            if job.status != JobStatus.COMPLETED and job.is_terminal:
                failed += 1
            if job.is_terminal:
                done += 1
                ok = job.status == JobStatus.COMPLETED
                self._finish(row, stage=stage_of(job), completed=100 if ok else job.progress,
                             chunks=count, ok=ok)
                continue
            if job.status == JobStatus.PROCESSING and not row.started:
                row.started = True
                self.progress.start_task(row.task)
            visible = not self.compact or job.status in (JobStatus.PROCESSING,
                                                         JobStatus.RETRYING)
            self.progress.update(row.task, completed=job.progress, stage=stage_of(job),
                                 chunks=_chunk_text(count), visible=visible)
        waiting = self.total - done
        parts = [f"{done - failed} ok"]
        if failed:
            parts.append(f"[red]{failed} failed[/]")
        if waiting:
            parts.append(f"{waiting} to go")
        icon = "" if waiting else ("[red]✗[/]" if failed else "[green]✓[/]")
        self.progress.update(self.overall, completed=done, chunks=_chunk_text(chunks),
                             stage=" · ".join(parts), icon=icon)

    def _finish(self, row: _Row, *, stage: str, completed: int, ok: bool,
                chunks: int | None = None) -> None:
        if row.finished:
            return
        row.finished = True
        if not row.started:
            self.progress.start_task(row.task)
        self.progress.update(row.task, completed=completed, stage=stage,
                             chunks=_chunk_text(chunks), icon="[green]✓[/]" if ok else "[red]✗[/]",
                             visible=not self.compact or not ok)
        self.progress.stop_task(row.task)

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()


def _chunk_text(count: int | None) -> str:
    return "" if count is None else plural(count, "chunk")
