"""Recurring jobs from a TOML file, e.g. for ``docworkers worker --schedules FILE``.

    [[schedules]]
    name = "nightly-reindex"
    type = "vector_reindex"
    cron = "0 2 * * *"            # or: every = 3600 (seconds)
    timezone = "Europe/Paris"     # optional, UTC by default
    payload = { collection = "risk", chunking_strategy = "sentence" }

Each entry becomes a :class:`~docworkers.queue.scheduler.Schedule`. The application says which
queue a type's jobs go to (``route``, e.g. a :class:`~docworkers.queue.routing.QueueRouter`'s
``queue_for``) and how a type's payload is checked (``check``), so the file is fully validated
when it is read: a typo fails at start-up, not at 2 a.m.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docworkers.errors import ConfigurationError, InvalidPayloadError
from docworkers.queue.scheduler import Schedule

__all__ = ["PayloadCheck", "Route", "load_schedules", "parse_schedules"]

#: The queue of a job type's jobs (None: the scheduler's own queue).
Route = Callable[[str], str | None]
#: The payload of a job type as its jobs will carry it; InvalidPayloadError (or
#: ConfigurationError) when it is not valid for that type.
PayloadCheck = Callable[[str, Any], dict[str, Any]]

_KEYS = {"name", "type", "payload", "cron", "every", "timezone", "priority", "catch_up"}


def load_schedules(path: str | Path, *, route: Route | None = None,
                   check: PayloadCheck | None = None) -> list[Schedule]:
    """The schedules of the TOML file at ``path``; ConfigurationError naming the file, the
    entry and the field for anything wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(str(path), f"cannot read the schedules file: {exc.strerror}"
                                 ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(str(path), f"the schedules file is not valid TOML: {exc}"
                                 ) from None
    try:
        return parse_schedules(data, route=route, check=check)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc.field}", exc.problem) from None


def parse_schedules(data: dict[str, Any], *, route: Route | None = None,
                    check: PayloadCheck | None = None) -> list[Schedule]:
    """Schedules from parsed TOML (``{"schedules": [{...}, ...]}``)."""
    unknown = set(data) - {"schedules"}
    if unknown:
        raise ConfigurationError(sorted(unknown)[0], "unknown table; the file holds "
                                 "[[schedules]] entries only")
    entries = data.get("schedules", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigurationError("schedules", "must be an array of tables ([[schedules]])")
    schedules = [_schedule(f"schedules[{i}]", entry, route, check)
                 for i, entry in enumerate(entries)]
    names = [s.name for s in schedules]
    for name in names:
        if names.count(name) > 1:
            raise ConfigurationError("name", f"schedule names must be unique; {name!r} is "
                                     "used twice")
    return schedules


def _schedule(where: str, entry: dict[str, Any], route: Route | None,
              check: PayloadCheck | None) -> Schedule:
    unknown = set(entry) - _KEYS
    if unknown:
        raise ConfigurationError(f"{where}.{sorted(unknown)[0]}",
                                 f"unknown key; use {', '.join(sorted(_KEYS))}")
    for key in ("name", "type"):
        if not isinstance(entry.get(key), str):
            raise ConfigurationError(f"{where}.{key}", "is required (a string)")
    job_type: str = entry["type"]
    try:
        queue = route(job_type) if route is not None else None
        payload = entry.get("payload", {})
        if check is not None:
            payload = check(job_type, payload)
        return Schedule(entry["name"], job_type, payload, cron=entry.get("cron"),
                        every=entry.get("every"), timezone=entry.get("timezone", "UTC"),
                        priority=entry.get("priority", 0), catch_up=entry.get("catch_up", False),
                        queue=queue)
    except InvalidPayloadError as exc:
        raise ConfigurationError(f"{where}.payload", str(exc)) from None
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}.{exc.field}", exc.problem) from None
