"""What a caller asks for when it enqueues a job, validated before anything reaches Redis."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from docworkers.errors import ConfigurationError, InvalidPayloadError
from docworkers.queue.job import MAX_PRIORITY, MIN_PRIORITY
from docworkers.queue.redis.keys import validate_job_id

PENDING = -1  # delay marker understood by enqueue.lua: create without queueing
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


# A version-4 UUID as one 128-bit number: the version nibble (4) is bits 76-79, the RFC 4122
# variant (binary 10) bits 62-63.
_UUID_KEEP = ((1 << 128) - 1) & ~(0xF << 76) & ~(0x3 << 62)
_UUID_SET = (0x4 << 76) | (0x2 << 62)


def new_job_id() -> str:
    """A random job id: the hex form of a version-4 UUID (as ``uuid.uuid4().hex``, faster)."""
    return (int.from_bytes(os.urandom(16)) & _UUID_KEEP | _UUID_SET).to_bytes(16).hex()


def check_type_and_payload(job_type: object, payload: object) -> None:
    """The checks of a job's type and payload (:class:`JobSpec` makes them; so does an
    enqueue with no other option, which builds no spec)."""
    if not isinstance(job_type, str) or not job_type.strip():
        raise ConfigurationError("type", "a job type is required (a non-empty string)")
    if not isinstance(payload, Mapping):
        raise InvalidPayloadError(
            f"payload must be a JSON object (a dict), got {type(payload).__name__}"
        )


def encode_payload(payload: Mapping[str, Any]) -> str:
    """A payload as the job stores it: compact JSON, or InvalidPayloadError."""
    try:
        return _encode(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidPayloadError(f"payload is not JSON-serialisable: {exc}") from exc


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job to enqueue. ``job_id`` makes enqueueing idempotent: a second call is a no-op."""

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 0
    delay: float = 0.0  # seconds from now; see also run_at
    run_at: datetime | None = None
    job_id: str | None = None
    max_retries: int | None = None
    user_id: str | None = None
    tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_type_and_payload(self.type, self.payload)
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ConfigurationError("priority", "must be an integer")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ConfigurationError(
                "priority", f"must be between {MIN_PRIORITY} and {MAX_PRIORITY}"
            )
        if self.delay < 0:
            raise ConfigurationError("delay", "must not be negative")
        if self.max_retries is not None and self.max_retries < 0:
            raise ConfigurationError("max_retries", "must not be negative")
        if self.job_id is not None:
            validate_job_id(self.job_id)
        if isinstance(self.tags, str):
            raise ConfigurationError("tags", "must be a list of strings, not one string")

    def encoded_payload(self) -> str:
        return encode_payload(self.payload)

    def delay_ms(self, now: datetime | None = None) -> int:
        if self.run_at is not None:
            moment = now or datetime.now(UTC)
            run_at = self.run_at if self.run_at.tzinfo else self.run_at.replace(tzinfo=UTC)
            return max(0, round((run_at - moment).total_seconds() * 1000))
        return round(self.delay * 1000)

    def script_args(self, *, pending: bool = False) -> tuple[str, ...]:
        """The 8 values per job that enqueue.lua reads, in its order."""
        return (
            self.job_id or new_job_id(),
            self.type,
            self.encoded_payload(),
            str(self.priority),
            str(PENDING if pending else self.delay_ms()),
            "" if self.max_retries is None else str(self.max_retries),
            self.user_id or "",
            json.dumps(list(self.tags)) if self.tags else "[]",
        )
