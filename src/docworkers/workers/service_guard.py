"""ServiceGuard: a circuit breaker plus cluster-wide rate and concurrency limits around one
external service (an embedding API, an LLM endpoint).

``guard.call(fn, *args)`` runs, in order:

1. the breaker's check: while it is open the call fails at once with ``CircuitOpenError``;
2. a token of the cluster-wide rate limit, waiting up to ``max_wait`` seconds for it;
3. a slot of the cluster-wide concurrency limit, polling up to ``max_wait`` seconds;
4. ``fn`` itself, through the breaker.

A limit that cannot grant within ``max_wait`` raises ``RateLimitedError``; like
``CircuitOpenError`` it is retryable and carries ``retry_after``, so the worker defers the job
to then without using an attempt instead of blocking a thread for ever.

What counts against the breaker is whatever ``fn`` raises, so ``fn`` should raise only for "the
service is down or overloaded" (connection errors, timeouts, 5xx, 429) and *return* answers the
caller will reject (a 4xx about the payload): those prove the service is up. The guard is
synchronous (the HTTP clients it protects run in worker threads); limits are taken through a
synchronous Redis client, so every thread and process of the cluster shares them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

from docworkers.errors import ConfigurationError, RateLimitedError
from docworkers.queue.rate_limit import refusals
from docworkers.queue.rate_limit_sync import SyncConcurrencyLimiter, SyncRateLimiter
from docworkers.workers.circuit_breaker import CircuitBreaker, breakers, get_breaker

__all__ = ["ServiceGuard", "refused_calls"]

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_MAX_WAIT = 10.0


class ServiceGuard:
    """Protection of one external service; build it with :meth:`build` (or pass the parts)."""

    def __init__(self, breaker: CircuitBreaker, *, rate: SyncRateLimiter | None = None,
                 concurrency: SyncConcurrencyLimiter | None = None,
                 max_wait: float = DEFAULT_MAX_WAIT) -> None:
        if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) \
                or not math.isfinite(max_wait) or max_wait < 0:
            raise ConfigurationError("max_wait", f"must be a number of seconds >= 0, got "
                                     f"{max_wait!r}")
        self.breaker = breaker
        self.rate = rate
        self.concurrency = concurrency
        self.max_wait = float(max_wait)

    @classmethod
    def build(cls, service: str, *, client: redis.Redis | None = None,
              rate_limit: float | None = None, max_concurrency: int | None = None,
              max_wait: float = DEFAULT_MAX_WAIT, failure_threshold: int = 5,
              reset_timeout: float = 30.0, namespace: str = "dw") -> ServiceGuard:
        """The process-wide breaker called ``service`` (see ``get_breaker``) and, when set,
        limits of ``rate_limit`` calls per second (bursts of up to one second's worth) and
        ``max_concurrency`` calls at once, shared through Redis by the whole cluster."""
        if (rate_limit is not None or max_concurrency is not None) and client is None:
            raise ConfigurationError(
                "client", f"limits of service {service!r} are kept in Redis: pass a client")
        rate = concurrency = None
        if rate_limit is not None:
            assert client is not None
            finite = isinstance(rate_limit, int | float) and math.isfinite(rate_limit)
            burst = max(1, math.floor(rate_limit)) if finite else 1  # the limiter checks rate
            rate = SyncRateLimiter(client, service, rate=rate_limit, burst=burst,
                                   namespace=namespace)
        if max_concurrency is not None:
            assert client is not None
            concurrency = SyncConcurrencyLimiter(client, service, max_concurrency,
                                                 namespace=namespace)
        breaker = get_breaker(service, failure_threshold=failure_threshold,
                              reset_timeout=reset_timeout)
        return cls(breaker, rate=rate, concurrency=concurrency, max_wait=max_wait)

    @property
    def name(self) -> str:
        return self.breaker.name

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` behind the breaker and the limits (see the module doc)."""
        self.breaker.check()  # refuse before a token or slot is spent on a refused call
        if self.rate is not None:
            self.rate.acquire(timeout=self.max_wait)
        if self.concurrency is None:
            return self.breaker.call_sync(fn, *args, **kwargs)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.concurrency.hold(timeout=self.max_wait))
            except RateLimitedError as exc:
                # The first lease runs out after up to a whole lease, but a call usually ends
                # much sooner: look again after max_wait rather than defer the job for a lease.
                raise RateLimitedError(exc.limiter, min(exc.retry_after,
                                                        max(self.max_wait, 0.05)),
                                       exc.detail) from exc
            return self.breaker.call_sync(fn, *args, **kwargs)

    def __repr__(self) -> str:
        limits = [f"rate={self.rate.rate:g}/s"] if self.rate else []
        if self.concurrency:
            limits.append(f"max_concurrency={self.concurrency.limit}")
        return f"<ServiceGuard {self.name!r} {self.breaker.state.value} {' '.join(limits)}>"


def refused_calls() -> dict[str, int]:
    """Calls refused in this process, by ``breaker:<name>``, ``rate:<name>`` and
    ``concurrency:<name>``: what a worker's heartbeat publishes for metrics."""
    counts = {f"breaker:{name}": b.stats().rejected_calls for name, b in breakers().items()}
    return {**{k: v for k, v in counts.items() if v}, **refusals()}
