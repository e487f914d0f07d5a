"""The "External services" table of ``docworkers stats``: circuit breakers and refused calls.

Both come from the stats every worker publishes with its heartbeat, so the table covers the
whole cluster. They belong to a process (its breakers serve all its workers): one row per
process and service, however many workers the process runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from docworkers.cli.render import esc, process_label

if TYPE_CHECKING:
    from rich.table import Table

_STATE_STYLES = {"closed": "green", "half_open": "yellow", "open": "bold red"}


def services_table(workers: Iterable[Mapping[str, Any]]) -> Table | None:
    """Breaker state and refused calls per process and service; None when nothing to show."""
    from rich.table import Table

    rows: dict[tuple[str, str], tuple[str, int]] = {}
    for worker in workers:
        process = process_label(worker.get("host", ""), worker.get("pid", ""))
        breakers = worker.get("breakers")
        limited = worker.get("limited")
        states = breakers if isinstance(breakers, Mapping) else {}
        refused = limited if isinstance(limited, Mapping) else {}
        for name, state in states.items():
            count = refused.get(f"breaker:{name}", 0)
            rows[(process, str(name))] = (str(state), int(count) if isinstance(count, int) else 0)
        for key, count in refused.items():
            if not str(key).startswith("breaker:") and isinstance(count, int):
                rows[(process, str(key))] = ("-", count)
    if not rows:
        return None
    table = Table(title="External services", title_justify="left")
    table.add_column("Process", overflow="fold")
    table.add_column("Breaker / limit", overflow="fold")
    table.add_column("State", no_wrap=True)
    table.add_column("Refused", justify="right", no_wrap=True)
    for (process, name), (state, count) in sorted(rows.items()):
        style = _STATE_STYLES.get(state)
        table.add_row(esc(process), esc(name),
                      f"[{style}]{state.replace('_', '-')}[/]" if style else state, str(count))
    return table
