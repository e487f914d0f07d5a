"""Share one embedding model between the many jobs of a worker process.

Each job awaits :meth:`BatchingEmbedder.embed`; its texts join one queue, and a single
background task cuts that queue into batches across callers and runs them, one at a time, in a
dedicated thread, so the event loop stays free while the model computes. A model kept busy with
full batches embeds several times more texts per second than many small calls competing for the
same cores (see ``benchmarks/embed_speed.py``).

Batching policy:

* Callers are served first come, first served: the task takes the oldest queued texts, up to
  ``max_batch_size`` of them, orders them by length (characters, a cheap stand-in for tokens)
  and hands them to the model in one call, which cuts them into its own batches (the ONNX
  model: at most 256 padded tokens each, run one per core). Few large calls keep the cores
  busy: each call ends with one core idle while the other finishes the last batch, and starts
  with both idle while the event loop hands it over and the texts are tokenised. Calls of 256
  texts instead of 64 left ~0.3 s less of the cores idle over 13 documents of 2,084 chunks
  (benchmarks/RESULTS.md, 2026-12-07), with the same batches.
* When the model is idle and fewer texts than a full batch are queued, the task waits up to
  ``max_wait_ms`` for more callers. Texts that queued while the model was busy go at once: they
  have already waited.
* A failed batch fails every caller with a text in it, with :class:`EmbeddingError`; other
  callers are unaffected. A refusal that carries ``retry_after`` (an open circuit breaker, a
  rate limit of the embedding service) reaches each caller as itself, so its job is deferred
  rather than charged an attempt. A cancelled caller's queued texts are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self

import numpy as np

from docworkers.errors import ConfigurationError, EmbeddingError, JobError
from docworkers.ingest.embedding import Embedder, Vectors

__all__ = ["BatcherStats", "BatchingEmbedder"]

logger = logging.getLogger(__name__)

@dataclasses.dataclass(slots=True)
class BatcherStats:
    """Counters since the batcher started. ``busy_seconds`` / wall time = model utilisation."""

    requests: int = 0  # embed() calls that queued texts
    texts: int = 0  # texts embedded successfully
    batches: int = 0  # model calls, failed ones included
    failed_batches: int = 0
    busy_seconds: float = 0.0  # wall time spent inside the model


class _Request:
    """One embed() call: its texts, its result rows as they arrive, and its future."""

    __slots__ = ("future", "remaining", "rows", "texts")

    def __init__(self, texts: list[str], future: asyncio.Future[Vectors]) -> None:
        self.texts = texts
        self.future = future
        self.rows: Vectors | None = None
        self.remaining = len(texts)


class BatchingEmbedder:
    """Async front of an :class:`Embedder` that batches texts across concurrent callers.

    Bound to the event loop that first uses it. Starts on first use (or :meth:`start`);
    :meth:`aclose` finishes the queued work, then stops; both are idempotent, and ``async with``
    does both.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        max_batch_size: int = 256,
        max_wait_ms: float = 5.0,
    ) -> None:
        if max_batch_size < 1:
            raise ConfigurationError("max_batch_size", f"must be at least 1, got {max_batch_size}")
        if not 0 <= max_wait_ms <= 1000:
            raise ConfigurationError(
                "max_wait_ms", f"must be between 0 and 1000 ms, got {max_wait_ms}"
            )
        self.embedder = embedder
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self._stats = BatcherStats()
        self._pending: deque[tuple[_Request, int]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._closed = False
        self._pool: list[tuple[_Request, int]] = []  # texts taken from the queue, in flight

    # --- Embedder-like surface ----------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.embedder.model_name

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    @property
    def max_tokens(self) -> int:
        return self.embedder.max_tokens

    @property
    def stats(self) -> BatcherStats:
        """A snapshot of the counters."""
        return dataclasses.replace(self._stats)

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has finished."""
        return self._closed

    @property
    def queued(self) -> int:
        """Texts waiting for the model."""
        return len(self._pending)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of ``texts`` (rows in order), computed in batches shared with other callers."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        if self._closing:
            raise EmbeddingError(f"{self.model_name}: the batching embedder is closed")
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        await self.start()
        assert self._wakeup is not None
        request = _Request(list(texts), asyncio.get_running_loop().create_future())
        self._pending.extend((request, index) for index in range(len(request.texts)))
        self._stats.requests += 1
        self._wakeup.set()
        # Cancelling the caller cancels the future, and the loop then skips its texts.
        return await request.future

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background task (idempotent; embed() calls it)."""
        if self._closing:
            raise EmbeddingError(f"{self.model_name}: the batching embedder is closed")
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docworkers-embed")
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="docworkers-embedding-batcher"
        )

    async def aclose(self) -> None:
        """Embed what is queued, then stop the task and its thread (idempotent)."""
        self._closing = True
        if self._task is not None:
            assert self._wakeup is not None
            self._wakeup.set()
            # wait() neither cancels the task if our caller is cancelled (the drain goes on)
            # nor raises if the task itself was cancelled.
            await asyncio.wait([self._task])
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._fail_pending(EmbeddingError(f"{self.model_name}: the batching embedder stopped"))
        self._closed = True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- the background task ------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    wakeup.clear()
                    await wakeup.wait()
                    # Woken from idle: let other callers join a partial batch.
                    await self._gather_more(wakeup)
                    continue
                try:
                    await self._run_batch(self._next_call())
                except Exception:  # a bug here must not strand every caller
                    logger.exception("embedding batcher: unexpected error; failing queued texts")
                    self._fail_pending(
                        EmbeddingError(f"{self.model_name}: internal error of the batcher")
                    )
                self._pool = []
        finally:
            self._fail_pending(EmbeddingError(f"{self.model_name}: the batching embedder stopped"))

    async def _gather_more(self, wakeup: asyncio.Event) -> None:
        deadline = time.monotonic() + self.max_wait
        while len(self._pending) < self.max_batch_size and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await wakeup.wait()

    def _next_call(self) -> list[tuple[_Request, int]]:
        """Take the oldest queued texts (one call's worth) and order them by length."""
        pool: list[tuple[_Request, int]] = []
        self._pool = pool
        while self._pending and len(pool) < self.max_batch_size:
            item = self._pending.popleft()
            if not item[0].future.done():  # cancelled or already failed
                pool.append(item)
        pool.sort(key=lambda item: len(item[0].texts[item[1]]))
        return pool

    async def _run_batch(self, batch: list[tuple[_Request, int]]) -> None:
        batch = [item for item in batch if not item[0].future.done()]
        if not batch:
            return
        texts = [request.texts[index] for request, index in batch]
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self._stats.batches += 1
        try:
            vectors = await loop.run_in_executor(self._executor, self.embedder.embed, texts)
            if vectors.ndim != 2 or vectors.shape[0] != len(texts):
                raise EmbeddingError(
                    f"{self.model_name}: returned shape {vectors.shape} for {len(texts)} texts"
                )
        except Exception as exc:
            self._stats.failed_batches += 1
            message = (
                str(exc)
                if isinstance(exc, EmbeddingError)
                else f"{self.model_name}: embedding failed: {exc!r}"
            )
            for request in {id(r): r for r, _ in batch}.values():
                if not request.future.done():
                    # One instance per caller: each gets its own traceback.
                    error = copy.copy(exc) if _deferrable(exc) else EmbeddingError(message)
                    error.__cause__ = exc
                    request.future.set_exception(error)
            return
        finally:
            self._stats.busy_seconds += time.perf_counter() - started
        self._stats.texts += len(texts)
        for (request, index), vector in zip(batch, vectors, strict=True):
            if request.future.done():
                continue
            if request.rows is None:
                request.rows = np.empty((len(request.texts), vectors.shape[1]), dtype=np.float32)
            request.rows[index] = vector
            request.remaining -= 1
            if request.remaining == 0:
                request.future.set_result(request.rows)

    def _fail_pending(self, error: EmbeddingError) -> None:
        """Fail every caller still waiting (queued or in the pool being run)."""
        items = [*self._pool, *self._pending]
        self._pool = []
        self._pending.clear()
        for request, _ in items:
            if not request.future.done():
                request.future.set_exception(EmbeddingError(str(error)))


def _deferrable(exc: Exception) -> bool:
    """A refusal to be retried later (CircuitOpenError, RateLimitedError), not a failure."""
    return isinstance(exc, JobError) and exc.retryable \
        and isinstance(getattr(exc, "retry_after", None), int | float)
