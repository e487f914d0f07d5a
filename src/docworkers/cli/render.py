"""Small formatting helpers shared by the commands: times, sizes, statuses, JSON output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

STATUS_STYLES = {
    "pending": "dim",
    "queued": "cyan",
    "retrying": "yellow",
    "processing": "blue",
    "completed": "green",
    "ok": "green",
    "failed": "red",
    "rejected": "red",
    "dead": "bold red",
    "cancelled": "magenta",
    "skipped": "dim",
}


def esc(value: object) -> str:
    """``value`` as text that rich prints literally (file names and messages may hold [])."""
    from rich.markup import escape

    return escape(str(value))


def styled_status(status: str) -> str:
    style = STATUS_STYLES.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def when(value: datetime | float | None) -> str:
    """A local time stamp, or '-' when unknown."""
    if value is None or value == 0:
        return "-"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, tz=UTC)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def short_when(value: datetime | float | None) -> str:
    """Like :func:`when`, without the date for today (narrow tables)."""
    if value is None or value == 0:
        return "-"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, tz=UTC)
    local = value.astimezone()
    same_day = local.date() == datetime.now().astimezone().date()
    return local.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M")


def with_name(identifier: str, name: str | None) -> str:
    """An id with the file name under it, dimmed: one table cell instead of two columns."""
    return f"{esc(identifier)}\n[dim]{esc(name)}[/]" if name else esc(identifier)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def echo_json(data: Any) -> None:
    """Plain JSON on stdout (no colours), for scripts."""
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def key_value_table(rows: list[tuple[str, Any]], title: str | None = None) -> Table:
    """Two columns; values are printed literally unless they are rich ``Text``."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, title=title, title_justify="left", box=None,
                  pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        if isinstance(value, Text):
            table.add_row(key, value)
        else:
            table.add_row(key, "-" if value is None or value == "" else esc(value))
    return table


def status_text(status: str) -> Text:
    from rich.text import Text

    return Text.from_markup(styled_status(status))
