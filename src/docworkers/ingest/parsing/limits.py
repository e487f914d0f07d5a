"""Resource limits for parsing one document, validated once so parsers can trust them."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from docworkers.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds that keep a hostile or pathological file from taking a worker down.

    ``timeout_seconds`` and ``max_memory_bytes`` are enforced hard only by
    :class:`~docworkers.ingest.parsing.IsolatedParser` (which can kill its child process); the
    in-process parser checks the deadline between pages and blocks.
    """

    max_file_bytes: int = 100 * 1024 * 1024
    timeout_seconds: float = 120.0
    max_memory_bytes: int = 2 * 1024**3
    max_chars: int = 50_000_000

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "timeout_seconds":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                if not ok or not math.isfinite(value) or value <= 0:
                    raise ConfigurationError(
                        spec.name, f"must be a positive number of seconds, got {value!r}"
                    )
            elif not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigurationError(spec.name, f"must be a positive integer, got {value!r}")


DEFAULT_LIMITS = ParseLimits()
