"""Time limits of the upload stages that run in the worker process: chunk, embed, store, enrich.

Parsing has its own limit (``ParseLimits.timeout_seconds``), enforced by killing the parser's
child process. The other stages run in this process, so each limit is enforced where the work
really stops, never by abandoning a thread that would go on burning a core:

* **chunk** (CPU work in a thread): the chunkers call a checkpoint between bounded steps (a
  segment of 64 Ki characters, an embedding call of the ``semantic`` strategy); past the
  deadline it raises :class:`~docworkers.errors.ChunkTimeoutError` inside the thread, which
  ends there. Permanent: the same text takes as long again.
* **embed** (awaits the batching embedder): the wait is cancelled, and the batcher drops the
  job's texts still queued; a batch already in the model finishes (one batch).
  :class:`~docworkers.errors.EmbedTimeoutError`, permanent.
* **store** (the vector store writes in a thread, in bounded requests): the deadline is checked
  before each request; :class:`~docworkers.errors.StoreTimeoutError`, retryable (see there).
* **enrich** (keywords, questions; per chunk, in a thread beside embedding): checked between
  chunks; the upload goes on without the rest of the enrichment, recorded as an
  ``enrich_timeout`` problem on the document.

:class:`StageLimits` travels with the other per-process services
(:class:`~docworkers.ingest.pipeline.DocumentServices`), like the parser's limits do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from docworkers.errors import ConfigurationError

__all__ = ["DEFAULT_STAGE_LIMITS", "Deadline", "StageLimits"]


@dataclass(frozen=True, slots=True)
class StageLimits:
    """Seconds each stage of one document may take. The defaults leave room for the largest
    legitimate documents (embedding runs at about 20 chunks/s on two cores: an hour is ~70,000
    chunks, a 70 MB text) and stop hostile ones."""

    chunk_timeout: float = 600.0
    embed_timeout: float = 3600.0
    store_timeout: float = 900.0
    enrich_timeout: float = 900.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= 0:
                raise ConfigurationError(
                    spec.name, f"must be a positive number of seconds, got {value!r}"
                )


DEFAULT_STAGE_LIMITS = StageLimits()


class Deadline:
    """A cooperative time limit: :meth:`check` raises ``error()`` once ``seconds`` have passed
    since construction (or since :meth:`expire`). Safe to check from any thread."""

    __slots__ = ("_at", "_clock", "_error")

    def __init__(
        self,
        seconds: float,
        error: Callable[[], Exception],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._at = clock() + seconds
        self._error = error

    def check(self) -> None:
        if self._clock() >= self._at:
            raise self._error()

    def expire(self) -> None:
        """Make the next :meth:`check` raise (to stop work whose result is no longer wanted)."""
        self._at = -math.inf

    @property
    def remaining(self) -> float:
        return max(0.0, self._at - self._clock())
