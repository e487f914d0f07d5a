"""``docworkers up``, ``down`` and ``status``: the local stack (private valkey + `chroma run`
for the data folder, DOCWORKERS_HOME) started, stopped and shown explicitly.

Commands start the servers they need on their own; ``up`` is for starting both ahead of time,
``down`` for stopping them (the data stays in the folder for the next ``up``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from docworkers.cli.context import CliState, state_of
from docworkers.cli.render import duration, echo_json, esc, size

if TYPE_CHECKING:
    from docworkers.stack import LocalStack, ServerStatus

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _stack(state: CliState) -> LocalStack:
    from docworkers.stack import LocalStack

    return LocalStack(state.settings.home)


def up_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Start the local stack's Redis (valkey) and Chroma servers if they are not running."""
    state = state_of(ctx)
    stack = _stack(state)
    stack.up()
    _show(state, stack, as_json=as_json)


def down_command(ctx: typer.Context) -> None:
    """Stop the local stack's servers; their data stays in the data folder."""
    from docworkers.stack.servers import KINDS

    state = state_of(ctx)
    stack = _stack(state)
    stopped = stack.down()
    if not stopped:
        state.out.print(f"No local server was running for {esc(stack.home)}.")
    for record in stopped:
        state.out.print(f"Stopped {KINDS[record.name].title} (pid {record.pid}, port "
                        f"{record.port}).")


def status_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the local stack's servers: pid, address, uptime, memory and data size."""
    state = state_of(ctx)
    _show(state, _stack(state), as_json=as_json)


def _show(state: CliState, stack: LocalStack, *, as_json: bool) -> None:
    servers = stack.status()
    notes = _configured_elsewhere(state)
    if as_json:
        echo_json({"home": str(stack.home), "servers": [_as_dict(s) for s in servers],
                   "configured": notes})
        return
    from rich.table import Table

    table = Table(title=f"Local stack in {esc(stack.home)}", title_justify="left")
    for name, justify in (("Server", "left"), ("State", "left"), ("PID", "right"),
                          ("Address", "left"), ("Up", "right"), ("Memory", "right"),
                          ("Data", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in servers:
        table.add_row(s.name, "[green]running[/]" if s.running else "[dim]stopped[/]",
                      str(s.pid or "-"), f"127.0.0.1:{s.port}" if s.port else "-",
                      duration(s.uptime) if s.uptime is not None else "-",
                      f"{s.memory_mb:.0f} MiB" if s.memory_mb is not None else "-",
                      size(s.data_bytes))
    state.out.print(table)
    for note in notes.values():
        state.out.print(f"[yellow]{esc(note)}[/]")


def _configured_elsewhere(state: CliState) -> dict[str, str]:
    """Servers the settings name, which the local stack then does not provide."""
    s = state.settings
    notes = {}
    if s.redis_url:
        notes["redis"] = "DOCWORKERS_REDIS_URL is set: commands use that Redis, not this one."
    if s.chroma_url:
        notes["chroma"] = "DOCWORKERS_CHROMA_URL is set: commands use that Chroma, not this one."
    elif s.chroma_path:
        notes["chroma"] = (f"DOCWORKERS_CHROMA_PATH is set: commands use embedded Chroma in "
                           f"{s.chroma_path}, not this server.")
    return notes


def _as_dict(s: ServerStatus) -> dict[str, Any]:
    from docworkers.queue.job import iso_time  # (redis-py: not for every --help)

    started = None if s.uptime is None else iso_time(time.time() - s.uptime)
    return {"name": s.name, "running": s.running, "pid": s.pid, "port": s.port, "url": s.url,
            "started_at": started, "uptime_seconds": s.uptime, "memory_mb": s.memory_mb,
            "data_bytes": s.data_bytes, "data_path": str(s.data_path),
            "log_path": str(s.log_path)}
