"""``docworkers jobs …``, ``docworkers dlq …`` and ``docworkers stats``: the queue, by hand.

Each job type has its own queue derived from DOCWORKERS_QUEUE (see
:mod:`docworkers.ingest.jobs.kinds`); these commands look at all of them together, so a job
is found by its id whatever its type.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from docworkers.cli.context import (
    EXIT_FAILURE,
    CliState,
    command_group,
    state_of,
    with_runtime,
)
from docworkers.cli.options import JsonOption
from docworkers.cli.render import (
    duration,
    echo_json,
    esc,
    key_value_table,
    not_found,
    print_error,
    process_label,
    short_when,
    snippet,
    status_text,
    styled_status,
    when,
    with_name,
)
from docworkers.cli.services import services_table
from docworkers.errors import InvalidStateError, JobNotFoundError

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

    from docworkers.queue import Job, QueueStats, RedisJobRepository
    from docworkers.queue.events import JobEvent
    from docworkers.queue.routing import RoutedQueues
    from docworkers.runtime import Runtime

T = TypeVar("T")

jobs_app = command_group("Submit, list, inspect, cancel and retry jobs of the queue "
                         "(DOCWORKERS_QUEUE) and its job types' queues.")
dlq_app = command_group("The dead-letter queue: jobs that failed all their retries.")

JobIds = Annotated[list[str], typer.Argument(help="One or more job ids.", show_default=False)]


def on_queue(ctx: typer.Context, what: str, action: Callable[[RoutedQueues], Awaitable[T]]
             ) -> T:
    """Run ``action`` on the configured queue and its job types' queues (shared Redis
    required)."""
    settings = state_of(ctx).settings

    async def main(runtime: Runtime) -> T:
        return await action(runtime.queues)

    return with_runtime(settings, main)


def job_not_found(state: CliState, job_id: str) -> str:
    """The not-found message of every job command (they look in the job types' queues too)."""
    return not_found("job", job_id, f"the queues of {state.settings.queue!r}")


# -- rendering --------------------------------------------------------------------------------


def _detail(job: Job) -> str:
    if job.error is not None:
        return f"[red]{esc(job.error.code)}[/]: {esc(snippet(job.error.message, 100))}"
    return esc(snippet(job.message, 100)) if job.message else ""


def jobs_table(jobs: list[Job], title: str) -> Table:
    from rich.table import Table

    from docworkers.queue import JobStatus

    table = Table(title=title, title_justify="left")
    table.add_column("Job / document", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    table.add_column("Message / error", overflow="fold", ratio=1, min_width=12)
    for job in jobs:
        status = styled_status(job.status.value)
        if job.status in (JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELLED):
            status += f" {job.progress}%"
        if job.retry_count:
            status += f"\nretried {job.retry_count}x"
        name = job.payload.get("filename")
        table.add_row(with_name(job.id, str(name) if name else None), status,
                      short_when(job.created_at), _detail(job))
    return table


def print_job(state: CliState, job: Job, *, as_json: bool,
              events: Sequence[JobEvent] | None = None) -> None:
    """A job's fields, payload, result and error; with ``events``, its timeline too."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.syntax import Syntax

    from docworkers.queue.events import timeline

    story = None if events is None else timeline(job, events)
    if as_json:
        data = job.to_dict()
        if story is not None:
            data["timeline"] = [event.to_dict() for event in story]
        echo_json(data)
        return
    limit = "set by the worker" if job.max_retries is None else job.max_retries
    rows: list[tuple[str, Any]] = [
        ("id", job.id), ("queue", job.queue), ("type", job.type),
        ("status", status_text(job.status.value)),
        ("progress", f"{job.progress}% {job.message}".strip()),
        ("priority", job.priority),
        ("retries", f"{job.retry_count} (max {limit})"),
        ("created", when(job.created_at)), ("started", when(job.started_at)),
        ("finished", when(job.completed_at)), ("processing time", duration(job.processing_time)),
        ("worker", job.worker_id), ("tags", ", ".join(job.tags)),
    ]
    if job.run_at is not None:
        rows.append(("run at", when(job.run_at)))
    parts: list[Any] = [key_value_table(rows)]
    parts.append(Panel(Syntax(json.dumps(job.payload, indent=2), "json", word_wrap=True),
                       title="payload", title_align="left"))
    if job.result is not None:
        parts.append(Panel(Syntax(json.dumps(job.result, indent=2), "json", word_wrap=True),
                           title="result", title_align="left"))
    if job.error is not None:
        error = [f"[bold red]{esc(job.error.code)}[/]"
                 + (f" (stage: {esc(job.error.stage)})" if job.error.stage else ""),
                 esc(job.error.message)]
        if job.error.traceback and state.show_tracebacks:
            error.append(esc(job.error.traceback))
        parts.append(Panel("\n".join(error), title="error", title_align="left",
                           border_style="red"))
    if story:
        parts.append(timeline_table(story))
    state.out.print(Group(*parts))


def timeline_table(story: Sequence[JobEvent]) -> Table:
    """The job's events, oldest first: when, what, and the event's details."""
    from rich.table import Table

    table = Table(title="Timeline", title_justify="left")
    table.add_column("When", no_wrap=True)
    table.add_column("Event", no_wrap=True)
    table.add_column("Details", overflow="fold")
    for event in story:
        details = ", ".join(f"{name} {value}" for name, value in event.details.items()
                            if value not in ("", None))
        style = "red" if event.kind in ("retry", "failed", "dead", "lease_expired") else ""
        table.add_row(when(event.at), f"[{style}]{event.kind}[/]" if style else event.kind,
                      esc(details))
    return table


def _per_job(ctx: typer.Context, what: str, job_ids: list[str],
             action: Callable[[RedisJobRepository, str], Awaitable[str]]) -> None:
    """Apply ``action`` to each id, report each outcome, exit 1 if any was refused."""
    state = state_of(ctx)

    async def main(queues: RoutedQueues) -> int:
        failures = 0
        for job_id in job_ids:
            try:
                repo = await queues.owner(job_id)
                state.out.print(f"{job_id}: {await action(repo, job_id)}")
            except JobNotFoundError:
                failures += 1
                print_error(state.err, job_not_found(state, job_id))
            except InvalidStateError as exc:
                failures += 1
                print_error(state.err, exc)
        return failures

    if on_queue(ctx, what, main):
        raise typer.Exit(EXIT_FAILURE)


# -- jobs -------------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(
        "--status", "-s", help="Only these statuses (repeatable): pending, queued, retrying, "
        "processing, completed, failed, dead, cancelled.")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only this job type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most N jobs.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    from docworkers.queue import JobFilter

    job_filter = JobFilter.of(statuses=status or (), types=[job_type] if job_type else (),
                              limit=limit)
    jobs = on_queue(ctx, "jobs list", lambda queues: queues.list_jobs(job_filter))
    state = state_of(ctx)
    if as_json:
        echo_json([job.to_dict() for job in jobs])
    elif not jobs:
        state.out.print(f"No jobs in queue {state.settings.queue!r}"
                        + (" with that filter." if status or job_type else "."))
    else:
        state.out.print(jobs_table(jobs, f"Jobs in queue {state.settings.queue!r}"))


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: Annotated[str, typer.Argument(help="The job id.")],
              as_json: JsonOption = False) -> None:
    """Show one job: state, payload, result, error and its timeline (reservations with their
    workers, progress messages, retries with their delays, the end)."""
    state = state_of(ctx)

    async def find(queues: RoutedQueues) -> tuple[Job, list[JobEvent]]:
        repo = await queues.owner(job_id)
        return await repo.get_job(job_id), await repo.job_events(job_id)

    try:
        job, events = on_queue(ctx, "jobs show", find)
    except JobNotFoundError:
        print_error(state.err, job_not_found(state, job_id))
        raise typer.Exit(EXIT_FAILURE) from None
    print_job(state, job, as_json=as_json, events=events)


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_ids: JobIds) -> None:
    """Cancel jobs: waiting ones at once, running ones at their next progress report."""

    async def cancel(repo: RedisJobRepository, job_id: str) -> str:
        outcome = await repo.cancel(job_id)
        return "cancelled" if outcome == "cancelled" else \
            "cancellation requested (the job is running; it stops at its next step)"

    _per_job(ctx, "jobs cancel", job_ids, cancel)


@jobs_app.command("retry")
def jobs_retry(ctx: typer.Context, job_ids: JobIds) -> None:
    """Queue failed, dead or cancelled jobs again, with a fresh retry budget."""

    async def retry(repo: RedisJobRepository, job_id: str) -> str:
        await repo.requeue(job_id)
        return "queued again"

    _per_job(ctx, "jobs retry", job_ids, retry)


# -- dead-letter queue ------------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(ctx: typer.Context,
             limit: Annotated[int, typer.Option(min=1, help="At most N jobs.")] = 50,
             as_json: JsonOption = False) -> None:
    """List dead jobs, most recent first."""
    jobs = on_queue(ctx, "dlq list", lambda queues: queues.dead_letters(limit=limit))
    state = state_of(ctx)
    if as_json:
        echo_json([job.to_dict() for job in jobs])
    elif not jobs:
        state.out.print(f"The dead-letter queue of {state.settings.queue!r} is empty.")
    else:
        state.out.print(jobs_table(jobs, f"Dead jobs in queue {state.settings.queue!r}"))


@dlq_app.command("show")
def dlq_show(ctx: typer.Context, job_id: Annotated[str, typer.Argument(help="The job id.")],
             as_json: JsonOption = False) -> None:
    """Show one dead job, with its last error."""
    jobs_show(ctx, job_id, as_json)


@dlq_app.command("requeue")
def dlq_requeue(
    ctx: typer.Context,
    job_ids: Annotated[list[str] | None, typer.Argument(help="Dead job ids.",
                                                        show_default=False)] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Requeue every dead job.")] = False,
) -> None:
    """Queue dead jobs again (named ones, or --all)."""
    if bool(job_ids) == all_jobs:
        raise typer.BadParameter("give job ids or --all (not both)", param_hint="JOB_IDS")
    if job_ids:
        jobs_retry(ctx, job_ids)
        return

    async def requeue_all(queues: RoutedQueues) -> int:
        count = 0
        for repo in queues.holding():
            ids: list[str] = []
            while page := await repo.dead_letters(limit=500, offset=len(ids)):
                ids += [job.id for job in page]
            for job_id in ids:
                await repo.requeue(job_id)
            count += len(ids)
        return count

    count = on_queue(ctx, "dlq requeue", requeue_all)
    state_of(ctx).out.print(f"Queued {count} dead job(s) again.")


@dlq_app.command("purge")
def dlq_purge(ctx: typer.Context, yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask for confirmation.")] = False) -> None:
    """Delete every dead job for good."""
    state = state_of(ctx)
    if not yes:
        dead = on_queue(ctx, "dlq purge", lambda queues: queues.stats()).by_status["dead"]
        if not dead:
            state.out.print("The dead-letter queue is empty.")
            return
        typer.confirm(f"Delete {dead} dead job(s) from queue {state.settings.queue!r} for "
                      "good?", abort=True)
    count = on_queue(ctx, "dlq purge", lambda queues: queues.purge_dead_letters())
    state.out.print(f"Deleted {count} dead job(s).")


# -- stats ------------------------------------------------------------------------------------


def stats_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Queue depth by status, totals, success rate, and the live workers (all job types)."""
    stats = on_queue(ctx, "stats", lambda queues: queues.stats())
    if as_json:
        echo_json(stats.to_dict())
        return
    state_of(ctx).out.print(stats_view(stats))


def stats_view(stats: QueueStats) -> Group:
    """The queue, the totals and the live workers, readable in 80 columns: numbers never wrap
    and are never cut; names and hosts fold, and low-value details share a cell."""
    from rich.console import Group
    from rich.table import Table

    depth = Table(title=f"Queue {stats.queue!r}", title_justify="left")
    depth.add_column("Status")
    depth.add_column("Jobs", justify="right")
    for status, count in stats.by_status.items():
        depth.add_row(styled_status(status), str(count))
    totals = key_value_table([
        ("completed (total)", stats.total_completed), ("failed (total)", stats.total_failed),
        ("dead (total)", stats.total_dead), ("retried (total)", stats.total_retried),
        ("leases expired", stats.total_lease_expired),
        ("success rate", f"{stats.success_rate:.1%}" if stats.total_completed
         + stats.total_failed + stats.total_dead else "-"),
        ("avg processing time", duration(stats.average_processing_time)
         if stats.total_completed else "-"),
        ("live workers", stats.active_workers),
        ("paused queues", ", ".join(esc(q) for q in stats.paused) if stats.paused else "none"),
    ])
    head: list[Any] = [depth]
    if stats.paused:
        head.append(f"[yellow]Paused: {', '.join(esc(q) for q in stats.paused)}[/] (no worker "
                    "takes their jobs until `docworkers queues resume QUEUE`)")
    if not stats.workers:
        return Group(*head, totals, "[dim]No live workers (start one with "
                     "`docworkers worker`).[/]")
    services = services_table(stats.workers)  # circuit breakers and limits, cluster-wide
    extra = [t for t in (services, supervisors_table(stats.supervisors)) if t is not None]
    return Group(*head, totals, workers_table(stats.workers), *extra)


#: Worker columns: a finished attempt by the status it left its job in, the queue's words
#: (so a worker's Failed counts jobs failed for good, like the queue's failed count).
OUTCOME_COLUMNS = (("Done", "completed"), ("Retried", "retrying"), ("Failed", "failed"),
                   ("Dead", "dead"))


def workers_table(workers: list[dict[str, Any]]) -> Table:
    """One row per live worker. The first cell holds, under the name, its process, mean job
    time and (when it autoscales) its scaling, so the numeric columns keep their full width at
    80 columns. Done, Retried, Failed and Dead count its finished attempts by the status they
    left the job in."""
    from rich.table import Table

    table = Table(title="Workers", title_justify="left",
                  caption="Done/Retried/Failed/Dead: attempts, by the status they left the job "
                          "in", caption_justify="left")
    table.add_column("Worker / process", overflow="fold", min_width=12)
    for name in ("Busy", *(column for column, _ in OUTCOME_COLUMNS), "Up"):
        table.add_column(name, justify="right", no_wrap=True)
    for w in workers:
        processed = int(w.get("jobs_processed", 0))
        outcomes = w.get("outcomes") or {}
        details = [process_label(w.get("host", ""), w.get("pid", ""))]
        if processed:
            details.append(f"avg {duration(float(w.get('average_process_time', 0.0)))}")
        if cancelled := int(outcomes.get("cancelled", 0)):
            details.append(f"{cancelled} cancelled")
        if (scaling := scaling_label(w)) != "fixed":
            details.append(f"scaling {scaling}")
        stopped = "" if w.get("is_running") else " [yellow](stopped)[/]"
        table.add_row(
            f"{esc(w.get('worker_name', '?'))}{stopped}\n[dim]{esc(', '.join(details))}[/]",
            f"{w.get('in_flight', 0)}/{w.get('concurrency', 0)}",
            *(str(int(outcomes.get(status, 0))) for _, status in OUTCOME_COLUMNS),
            duration(float(w.get("uptime", 0.0))))
    return table


def scaling_label(worker: dict[str, Any]) -> str:
    """``fixed``, or the autoscaling bounds and the last decision, e.g. ``1-8 backlog``."""
    how = str(worker.get("scaling") or "fixed")
    if how == "fixed":
        return how
    return f"{worker.get('min_concurrency', '?')}-{worker.get('max_concurrency', '?')} {how}"


def supervisors_table(supervisors: list[dict[str, Any]]) -> Table | None:
    """Autoscaling process pools (`docworkers worker --max-processes`)."""
    from rich.table import Table

    if not supervisors:
        return None
    table = Table(title="Worker processes", title_justify="left")
    # Text folds (the two first and the decision); numbers keep their width.
    table.add_column("Supervisor", overflow="fold")
    table.add_column("Processes", overflow="fold", justify="right")
    for name in ("Bounds", "Waiting"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("Decision", overflow="fold")
    for name in ("Started", "Retired"):
        table.add_column(name, justify="right", no_wrap=True)
    for s in supervisors:
        retiring = int(s.get("retiring", 0))
        table.add_row(
            esc(str(s.get("name", "?"))),
            f"{s.get('processes', 0)}" + (f"\n+{retiring} retiring" if retiring else ""),
            f"{s.get('min_processes', '?')}-{s.get('max_processes', '?')}",
            str(s.get("queue_depth", 0)), esc(str(s.get("reason", ""))),
            str(s.get("started", 0)), str(s.get("retired", 0)))
    return table
