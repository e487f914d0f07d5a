"""How one queue keeps its jobs: :class:`RepositoryConfig`, validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from docworkers.errors import ConfigurationError
from docworkers.queue.job import DEFAULT_MAX_RETRIES
from docworkers.queue.redis.keys import validate_queue_name
from docworkers.queue.reply_spin import SPIN_LIMIT


@dataclass(frozen=True, kw_only=True, slots=True)
class RepositoryConfig:
    """How one queue keeps its jobs. Durations are seconds."""

    queue: str = "default"
    namespace: str = "dw"
    completed_retention: float = 24 * 3600.0
    failed_retention: float = 7 * 24 * 3600.0
    dead_letter_cap: int = 10_000
    default_max_retries: int = DEFAULT_MAX_RETRIES
    notify_cap: int = 1_000
    # Seconds a producer polls for an intake push's reply before it blocks (reply_spin.py);
    # 0 never spins.
    reply_spin: float = SPIN_LIMIT

    def __post_init__(self) -> None:
        validate_queue_name(self.queue)
        validate_queue_name(self.namespace)
        for name in ("completed_retention", "failed_retention"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(name, "must be a positive number of seconds")
        for name in ("dead_letter_cap", "notify_cap"):
            if getattr(self, name) < 1:
                raise ConfigurationError(name, "must be at least 1")
        if not 0 <= self.reply_spin <= 0.001:
            raise ConfigurationError("reply_spin", "must be between 0 and 0.001 seconds")
        if self.default_max_retries < 0:
            raise ConfigurationError("default_max_retries", "must not be negative")
