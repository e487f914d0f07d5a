"""Small formatting helpers shared by the commands: times, sizes, statuses, JSON output."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
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


# The password of a URL's user information: ``redis://:secret@host``, ``http://u:secret@host``.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s/@:]*):[^\s/@]+@", re.IGNORECASE)


def without_passwords(text: str) -> str:
    """``text`` with the password of every URL in it shown as ``***``: error messages name the
    server they could not reach, and a terminal or CI log is no place for its password."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", text)


def print_error(console: Console, message: object) -> None:
    """The one form of every error a command reports: a red ``error:`` and one line (one even
    in a log file, where the terminal's wrapping does not happen)."""
    console.print(f"[bold red]error:[/] {esc(without_passwords(str(message)))}",
                  highlight=False, soft_wrap=True)


def not_found(kind: str, identifier: str, where: str = "") -> str:
    """The one wording of "no such thing" in every command: ``job 'x' not found in queue 'q'``.
    Commands exit with EXIT_FAILURE (1) after it, like any other failure."""
    return f"{kind} {identifier!r} not found" + (f" in {where}" if where else "")


def process_label(host: object, pid: object) -> str:
    """A process as ``host (pid 123)``: a narrow column wraps it between host and pid, never
    inside the pid (``host:123`` would be folded anywhere)."""
    return f"{host} (pid {pid})"


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
