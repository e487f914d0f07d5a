"""A job's timeline: the events the queue scripts record as it moves (see ``lua/_lib.lua``).

Each event is stored as a JSON array ``[ms, kind, details...]`` in the list
``<ns>:{<queue>}:events:<id>``, deleted with the job. The list is bounded: at most
:data:`EVENT_CAP` events of messages cut to :data:`EVENT_TEXT` characters (the oldest go
first; progress messages stop pushing at :data:`PROGRESS_ROOM` events and then replace the last
one), so a job's events take at most about 7.6 KB (7,744 bytes measured at the cap with every
text at its longest); an upload-like job (reserved, six progress messages, completed) takes
about 544 bytes (``benchmarks/job_events.py``).
Enqueueing records nothing: the ``enqueued`` event is the job's ``created_at``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from docworkers.queue.job import Job, JSONValue, iso_time

__all__ = ["EVENT_CAP", "EVENT_TEXT", "PROGRESS_ROOM", "JobEvent", "attempts", "parse_events",
           "timeline"]

# The same numbers as lua/_lib.lua's (the scripts enforce them; a test checks they agree).
EVENT_CAP = 32
PROGRESS_ROOM = 24
EVENT_TEXT = 160

# The details of each kind of event, after [ms, kind], in the order the scripts write them.
_DETAILS: dict[str, tuple[str, ...]] = {
    "reserved": ("worker", "token", "lease_until"),
    "progress": ("progress", "message"),
    "retry": ("delay_ms", "run_at", "code", "message"),
    "deferred": ("delay_ms", "run_at", "code", "message"),
    "failed": ("code", "message"),
    "dead": ("code", "message"),
    "cancelled": ("code", "message"),
    "completed": (),
    "lease_expired": ("worker", "outcome"),
    "released": ("worker",),
    "requeued": ("previous",),
    "cancel_requested": (),
}
_TIMES = ("lease_until", "run_at")  # epoch ms, shown as ISO times
# Events that end an attempt, and the outcome they give it.
_ENDS = {"retry": "retry", "deferred": "deferred", "failed": "failed", "dead": "dead",
         "cancelled": "cancelled", "completed": "completed", "lease_expired": "lease expired",
         "released": "released"}


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One recorded change of a job."""

    at: datetime
    kind: str
    details: dict[str, JSONValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, JSONValue]:
        return {"at": iso_time(self.at), "kind": self.kind, **self.details}


def _when(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def parse_events(raw: Iterable[str]) -> list[JobEvent]:
    """The events of a job's list, oldest first; an unreadable entry is skipped."""
    events = []
    for item in raw:
        try:
            at, kind, *values = json.loads(item)
            names = _DETAILS.get(kind, ())
            details: dict[str, Any] = dict(zip(names, values, strict=False))
            for name in _TIMES:
                if isinstance(details.get(name), int | float):
                    details[name] = iso_time(_when(details[name]))
            events.append(JobEvent(_when(at), str(kind), details))
        except (ValueError, TypeError):
            continue
    return events


def timeline(job: Job, events: Sequence[JobEvent]) -> list[JobEvent]:
    """The job's whole story: when it was enqueued (its creation), then its recorded events."""
    if job.created_at is None:
        return list(events)
    start = JobEvent(job.created_at, "enqueued", {"priority": job.priority})
    return [start, *events]


def attempts(events: Sequence[JobEvent]) -> list[dict[str, JSONValue]]:
    """One entry per reservation: its worker, start, lease, end, outcome and error, if any."""
    found: list[dict[str, JSONValue]] = []
    current: dict[str, JSONValue] | None = None
    for event in events:
        if event.kind == "reserved":
            current = {"number": len(found) + 1, "worker": event.details.get("worker"),
                       "token": event.details.get("token"), "started_at": iso_time(event.at),
                       "lease_until": event.details.get("lease_until"), "ended_at": None,
                       "outcome": None, "error": None, "last_message": None}
            found.append(current)
        elif current is not None and event.kind == "progress":
            current["last_message"] = event.details.get("message")
        elif current is not None and event.kind in _ENDS:
            current["ended_at"] = iso_time(event.at)
            current["outcome"] = _ENDS[event.kind]
            if event.details.get("code"):
                current["error"] = {"code": event.details.get("code"),
                                    "message": event.details.get("message")}
            current = None
    return found
