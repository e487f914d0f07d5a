"""Circuit breakers for the external services that jobs call (vector store, embedder, LLM).

When a service is down, letting every job time out against it slows its recovery and burns
the jobs' attempts. After ``failure_threshold`` consecutive failures a breaker *opens*: calls
fail at once with :class:`~docworkers.errors.CircuitOpenError` (a retryable
``ServiceUnavailableError``, so the worker retries the job later instead of dead-lettering it).
After ``reset_timeout`` seconds it is *half open*: ``half_open_max_calls`` probe calls go
through; a success closes it, a failure opens it for another ``reset_timeout``.

The worker reschedules a job refused this way for ``retry_after`` seconds later without using
one of its attempts. :class:`~docworkers.workers.service_guard.ServiceGuard` puts a breaker and
cluster-wide rate and concurrency limits around one external service.

State is per process. One ``threading.Lock`` guards it because sync clients (Chroma, ONNX) call
through :meth:`CircuitBreaker.call_sync` from worker threads while async code shares the same
breaker on the event loop; the lock is held only for bookkeeping, never across a call or await.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from docworkers.errors import (
    CircuitOpenError,
    ConfigurationError,
    JobCancelledError,
    PermanentJobError,
)

__all__ = [
    "BreakerStats",
    "CircuitBreaker",
    "CircuitState",
    "breaker_states",
    "breakers",
    "counts_as_failure",
    "get_breaker",
]

log = logging.getLogger("docworkers.circuit_breaker")

P = ParamSpec("P")
T = TypeVar("T")


class CircuitState(StrEnum):
    CLOSED = "closed"  # calls go through; consecutive failures are counted
    OPEN = "open"  # calls fail fast until reset_timeout has passed
    HALF_OPEN = "half_open"  # a few probe calls decide between closed and open


@dataclass(frozen=True, slots=True)
class BreakerStats:
    """A snapshot for metrics and the API."""

    name: str
    state: CircuitState
    failures: int  # consecutive counted failures (reset by a success or by opening)
    opened_count: int  # how many times the breaker opened since it was created
    last_failure: str | None  # "Type: message" of the last counted failure
    rejected_calls: int  # calls refused without being tried
    retry_after: float  # seconds until a probe is allowed; 0 unless open

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


def counts_as_failure(exc: BaseException) -> bool:
    """The default failure predicate: any Exception except bad input and cancellation.

    A :class:`PermanentJobError` says the *job* is wrong (a corrupt file, a request the service
    rejected as invalid: ``InputRejectedError``), not that the service is down; a
    :class:`ConfigurationError` says an argument or a setting is wrong (a collection name, an
    embedding dimension that does not fit the collection); a cancellation says nothing about
    the service either. Counting them would let a client's bad requests open the breaker and
    fail everybody's calls.
    """
    return isinstance(exc, Exception) and not isinstance(
        exc, PermanentJobError | JobCancelledError | ConfigurationError
    )


@dataclass(frozen=True, slots=True)
class _Ticket:
    """What admission granted: results of calls admitted before the last state change are
    stale (a slow call that started while closed must not close a breaker opened since)."""

    generation: int
    probe: bool


# The tickets of `async with breaker:` blocks entered in the current task (or thread): a
# ContextVar because one breaker object is entered by many tasks at once.
_entered: ContextVar[tuple[tuple[CircuitBreaker, _Ticket], ...]] = ContextVar(
    "docworkers_breakers_entered", default=()
)


class CircuitBreaker:
    """Fail fast while a service is down; probe it now and then; close when it answers.

    Use ``async with breaker:``, ``await breaker.call(fn, *args)`` or, from a thread,
    ``breaker.call_sync(fn, *args)``. A breaker registers itself under its name (see
    :func:`breakers`); two live breakers with one name would split the failure count of one
    service, so that is an error: share the first one through :func:`get_breaker`.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        is_failure: Callable[[BaseException], bool] = counts_as_failure,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError("name", "a circuit breaker needs a non-empty name")
        _positive_int("failure_threshold", failure_threshold)
        _positive_int("half_open_max_calls", half_open_max_calls)
        if isinstance(reset_timeout, bool) or not isinstance(reset_timeout, int | float) \
                or not reset_timeout > 0:
            raise ConfigurationError("reset_timeout", f"must be a positive number of seconds, "
                                     f"got {reset_timeout!r}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self.half_open_max_calls = half_open_max_calls
        self._is_failure = is_failure
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self._opened_count = 0
        self._rejected = 0
        self._last_failure: str | None = None
        _register(self)

    # -- using it ---------------------------------------------------------------------------

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args,
                   **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        ticket = self._admit()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._record(ticket, exc)
            raise
        self._record(ticket, None)
        return result

    def call_sync(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker; safe from any thread."""
        ticket = self._admit()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._record(ticket, exc)
            raise
        self._record(ticket, None)
        return result

    async def __aenter__(self) -> CircuitBreaker:
        ticket = self._admit()
        _entered.set((*_entered.get(), (self, ticket)))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        stack = _entered.get()
        for i in range(len(stack) - 1, -1, -1):  # the innermost block of this breaker
            if stack[i][0] is self:
                ticket = stack[i][1]
                _entered.set(stack[:i] + stack[i + 1:])
                self._record(ticket, exc)
                return
        raise RuntimeError(f"circuit breaker {self.name!r}: __aexit__ without __aenter__")

    def check(self) -> None:
        """Raise :class:`CircuitOpenError` now if a call would be refused (counted as a
        rejected call); else return without admitting anything.

        For callers that must spend something before the call (a rate-limit token, a
        concurrency slot) and should not spend it on a call the breaker would refuse anyway.
        """
        with self._lock:
            self._refresh()
            if self._state is CircuitState.OPEN or (
                    self._state is CircuitState.HALF_OPEN
                    and self._probes >= self.half_open_max_calls):
                self._rejected += 1
                retry_after = self._retry_after() if self._state is CircuitState.OPEN \
                    else self.reset_timeout
            else:
                return
        raise CircuitOpenError(self.name, retry_after)

    # -- looking at it ----------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        with self._lock:
            self._refresh()
            return self._state

    def stats(self) -> BreakerStats:
        with self._lock:
            self._refresh()
            return BreakerStats(
                name=self.name,
                state=self._state,
                failures=self._failures,
                opened_count=self._opened_count,
                last_failure=self._last_failure,
                rejected_calls=self._rejected,
                retry_after=self._retry_after() if self._state is CircuitState.OPEN else 0.0,
            )

    def reset(self) -> None:
        """Close the breaker by hand (an operator knows the service is back)."""
        with self._lock:
            self._transition(CircuitState.CLOSED)

    def unregister(self) -> None:
        """Drop this breaker from the registry, so a new one may take its name."""
        with _registry_lock:
            if _registry.get(self.name) is self:
                del _registry[self.name]

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state.value}>"

    # -- the state machine (every method below runs under self._lock) -----------------------

    def _admit(self) -> _Ticket:
        with self._lock:
            self._refresh()
            if self._state is CircuitState.CLOSED:
                return _Ticket(self._generation, probe=False)
            if self._state is CircuitState.HALF_OPEN and self._probes < self.half_open_max_calls:
                self._probes += 1
                return _Ticket(self._generation, probe=True)
            self._rejected += 1
            # While probes are in flight they decide; if they fail it stays shut this long.
            retry_after = self._retry_after() if self._state is CircuitState.OPEN \
                else self.reset_timeout
        raise CircuitOpenError(self.name, retry_after)

    def _record(self, ticket: _Ticket, exc: BaseException | None) -> None:
        with self._lock:
            current = ticket.generation == self._generation
            if ticket.probe and current:
                self._probes -= 1
            if exc is None:
                if not current:
                    return
                if self._state is CircuitState.HALF_OPEN:
                    self._transition(CircuitState.CLOSED)
                    log.info("circuit breaker %r closed: a probe call succeeded", self.name)
                else:
                    self._failures = 0
                return
            if not self._is_failure(exc):
                return
            self._last_failure = f"{type(exc).__name__}: {exc}"
            if not current:
                return
            if self._state is CircuitState.CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    log.warning("circuit breaker %r opened after %d consecutive failures "
                                "(last: %s); refusing calls for %.1fs", self.name,
                                self._failures, self._last_failure, self.reset_timeout)
                    self._transition(CircuitState.OPEN)
            elif self._state is CircuitState.HALF_OPEN:
                log.warning("circuit breaker %r re-opened: a probe call failed (%s)",
                            self.name, self._last_failure)
                self._transition(CircuitState.OPEN)

    def _refresh(self) -> None:
        """Open turns half-open lazily, when someone looks after reset_timeout."""
        if self._state is CircuitState.OPEN and self._retry_after() <= 0:
            self._transition(CircuitState.HALF_OPEN)

    def _retry_after(self) -> float:
        return max(0.0, self._opened_at + self.reset_timeout - self._clock())

    def _transition(self, state: CircuitState) -> None:
        self._state = state
        self._generation += 1
        self._probes = 0
        self._failures = 0
        if state is CircuitState.OPEN:
            self._opened_at = self._clock()
            self._opened_count += 1


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(name, f"must be an integer >= 1, got {value!r}")


# -- the registry: every named breaker of the process, for metrics and the API ---------------

_registry: dict[str, CircuitBreaker] = {}
_registry_lock = threading.RLock()


def _register(breaker: CircuitBreaker) -> None:
    with _registry_lock:
        if breaker.name in _registry:
            raise ConfigurationError(
                "name", f"a circuit breaker named {breaker.name!r} already exists; share it "
                f"with get_breaker({breaker.name!r}) or unregister() it first"
            )
        _registry[breaker.name] = breaker


def get_breaker(name: str, *, failure_threshold: int | None = None,
                reset_timeout: float | None = None,
                half_open_max_calls: int | None = None) -> CircuitBreaker:
    """The breaker called ``name``, created with these settings on first use.

    Like ``logging.getLogger``: every caller protecting one service shares one breaker. A
    setting that disagrees with the existing breaker's is an error, not silently ignored.
    """
    wanted = {"failure_threshold": failure_threshold, "reset_timeout": reset_timeout,
              "half_open_max_calls": half_open_max_calls}
    given: dict[str, Any] = {k: v for k, v in wanted.items() if v is not None}
    with _registry_lock:  # re-entrant: the constructor registers under it too
        existing = _registry.get(name)
        if existing is None:
            return CircuitBreaker(name, **given)
    for key, value in given.items():
        if getattr(existing, key) != value:
            raise ConfigurationError(
                key, f"circuit breaker {name!r} already exists with {key}="
                f"{getattr(existing, key)!r}, not {value!r}"
            )
    return existing


def breakers() -> dict[str, CircuitBreaker]:
    """Every registered breaker by name (a copy), for metrics and the API."""
    with _registry_lock:
        return dict(sorted(_registry.items()))


def breaker_states() -> dict[str, str]:
    """``{name: "closed" | "half_open" | "open"}`` of every registered breaker: what a worker's
    heartbeat publishes, so every process sees the breakers of the whole cluster."""
    return {name: breaker.state.value for name, breaker in breakers().items()}
