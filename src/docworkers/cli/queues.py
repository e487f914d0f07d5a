"""``docworkers queues …``: each queue's depth, and pausing or resuming one.

The queues are the configured one (DOCWORKERS_QUEUE) and one per job type that has its own
(see :mod:`docworkers.ingest.jobs.kinds`). A paused queue keeps and accepts jobs, but no
worker reserves them until it is resumed; running jobs finish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from docworkers.cli.context import EXIT_FAILURE, command_group, state_of
from docworkers.cli.jobs import on_queue
from docworkers.cli.options import JsonOption
from docworkers.cli.render import echo_json, esc, not_found, print_error, when

if TYPE_CHECKING:
    from docworkers.queue.routing import RoutedQueues

queues_app = command_group("Each queue's jobs by status; pause or resume a queue.")

QueueArgument = Annotated[str, typer.Argument(
    help="The queue: DOCWORKERS_QUEUE or a job type's (see `docworkers queues list`).",
    show_default=False)]
#: The columns of ``queues list``: (header, status); completed and cancelled are in `stats`.
COLUMNS = (("Queued", "queued"), ("Retrying", "retrying"), ("Active", "processing"),
           ("Failed", "failed"), ("Dead", "dead"))


@queues_app.command("list")
def queues_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Each queue's jobs by status, and whether it is paused."""
    async def read(queues: RoutedQueues) -> list[dict[str, Any]]:
        rows = []
        for repo in queues.holding():
            stats = await repo.stats()
            since = await repo.paused_since()
            rows.append({"queue": repo.queue, "paused": since is not None,
                         "paused_since": None if since is None else since.isoformat(),
                         "by_status": stats.by_status, "workers": stats.active_workers})
        return rows

    rows = on_queue(ctx, "queues list", read)
    if as_json:
        echo_json(rows)
        return
    from rich import box
    from rich.table import Table

    # No vertical rules, so 80 columns hold a long queue name (folded) and every count whole.
    table = Table(title="Queues", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("Queue", overflow="fold", min_width=16)
    table.add_column("State", no_wrap=True)
    for header, _ in COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("Workers", justify="right", no_wrap=True)
    for row in rows:
        state = "[yellow]paused[/]" if row["paused"] else "running"
        table.add_row(esc(row["queue"]), state,
                      *(str(row["by_status"].get(status, 0)) for _, status in COLUMNS),
                      str(row["workers"]))
    state_of(ctx).out.print(table)


def _set_paused(ctx: typer.Context, queue: str, paused: bool) -> None:
    state = state_of(ctx)
    verb = "pause" if paused else "resume"

    async def act(queues: RoutedQueues) -> tuple[bool, bool, Any]:
        for repo in queues.holding():
            if repo.queue == queue:
                changed = await (repo.pause() if paused else repo.resume())
                return True, changed, await repo.paused_since()
        return False, False, None

    found, changed, since = on_queue(ctx, f"queues {verb}", act)
    if not found:
        print_error(state.err, not_found("queue", queue) + "; see `docworkers queues list`")
        raise typer.Exit(EXIT_FAILURE)
    if paused:
        state.out.print(f"Queue {queue!r} is [yellow]paused[/] since {when(since)}"
                        + ("" if changed else " (it already was)")
                        + ": workers reserve none of its jobs.")
    else:
        state.out.print(f"Queue {queue!r} runs" + ("" if changed else " (it was not paused)")
                        + ": workers reserve its jobs.")


@queues_app.command("pause")
def queues_pause(ctx: typer.Context, queue: QueueArgument) -> None:
    """Stop workers taking jobs of QUEUE; running jobs finish, no job is lost."""
    _set_paused(ctx, queue, True)


@queues_app.command("resume")
def queues_resume(ctx: typer.Context, queue: QueueArgument) -> None:
    """Let workers take jobs of QUEUE again (idle ones wake at once)."""
    _set_paused(ctx, queue, False)
