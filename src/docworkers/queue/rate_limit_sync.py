"""The cluster-wide limits of :mod:`docworkers.queue.rate_limit`, for synchronous code.

The HTTP clients of external services (the OpenAI-compatible embedder, the LLM enricher) are
synchronous and run in worker threads. These classes take the same permits, with the same Lua
scripts and keys, through a synchronous redis-py client (thread-safe), so threads and event
loops of every process share one limit. Waits are ``time.sleep``: call them from a thread,
never from an event loop.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator

import redis

from docworkers.errors import RateLimitedError, RepositoryError
from docworkers.queue.rate_limit import (
    Hold,
    SlotPoller,
    check_concurrency_args,
    check_rate_args,
    check_timeout,
    check_tokens,
    concurrency_key,
    count_refusal,
    new_holder_id,
    rate_limit_key,
)
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.scripts import register

__all__ = ["SyncConcurrencyLimiter", "SyncRateLimiter"]

log = logging.getLogger("docworkers.rate_limit")



class SyncRateLimiter:
    """:class:`~docworkers.queue.rate_limit.RedisRateLimiter` for threads: at most ``burst``
    immediate grants, then ``rate`` per second, cluster-wide."""

    def __init__(self, client: redis.Redis, name: str, *, rate: float, burst: int,
                 namespace: str = "dw") -> None:
        self.name = check_rate_args(name, namespace, rate, burst)
        self.rate = float(rate)
        self.burst = burst
        self.key = rate_limit_key(name, namespace)
        self._client = client
        self._script = register(client, "rate_limit")
        self._errors = RedisErrors(f"rate limit {name!r}")

    def try_acquire(self, tokens: int = 1) -> float:
        """Take ``tokens`` if they are there now: 0.0 if granted, else seconds until they are."""
        granted, wait = self._take(tokens, max_wait=0.0)
        return 0.0 if granted else wait

    def acquire(self, tokens: int = 1, *, timeout: float | None = None) -> None:
        """Sleep until ``tokens`` are granted; RateLimitedError at once (nothing taken) if that
        would take over ``timeout`` seconds."""
        check_timeout(timeout)
        granted, wait = self._take(tokens, max_wait=timeout)
        if not granted:
            count_refusal(f"rate:{self.name}")
            raise RateLimitedError(
                self.name, wait,
                f"{tokens} call(s) at {self.rate:g}/s (burst {self.burst}) need {wait:.3f}s, "
                f"more than timeout={timeout}s",
            )
        if wait > 0:
            time.sleep(wait)

    def _take(self, tokens: int, *, max_wait: float | None) -> tuple[bool, float]:
        check_tokens(tokens, self.burst, self.name)
        limit_us = -1 if max_wait is None else math.floor(max_wait * 1e6)
        with self._errors:
            granted, wait_us = self._script(
                keys=[self.key], args=[repr(1e6 / self.rate), self.burst, tokens, limit_us]
            )
        return bool(granted), int(wait_us) / 1e6


class SyncConcurrencyLimiter:
    """:class:`~docworkers.queue.rate_limit.RedisConcurrencyLimiter` for threads: at most
    ``limit`` holders at once across the cluster, each slot a lease renewed while held."""

    def __init__(self, client: redis.Redis, name: str, limit: int, lease: float = 30.0, *,
                 namespace: str = "dw") -> None:
        self.name = check_concurrency_args(name, namespace, limit, lease)
        self.limit = limit
        self.lease = float(lease)
        self.key = concurrency_key(name, namespace)
        self._client = client
        self._script = register(client, "concurrency")
        self._errors = RedisErrors(f"concurrency limit {name!r}")

    @contextlib.contextmanager
    def hold(self, *, timeout: float | None = None) -> Iterator[Hold]:
        """Hold a slot for the block (a thread renews its lease every lease / 3);
        RateLimitedError if none is free within ``timeout``."""
        holding = Hold(self.name, new_holder_id())
        self.acquire(holding.holder_id, timeout=timeout)
        done = threading.Event()
        renewer = threading.Thread(target=self._keep, args=(holding, done), daemon=True,
                                   name=f"hold-{self.name}")
        renewer.start()
        try:
            yield holding
        finally:
            done.set()
            renewer.join(timeout=self.lease)
            try:
                self.release(holding.holder_id)
            except RepositoryError as exc:
                log.warning("concurrency limit %r: could not release %s (%s); the slot comes "
                            "back when its lease ends in %.1fs", self.name, holding.holder_id,
                            exc, self.lease)

    def acquire(self, holder_id: str, *, timeout: float | None = None) -> None:
        """Take a slot for ``holder_id``, polling while the limit is full."""
        check_timeout(timeout)
        poller = SlotPoller(self.name, self.limit, timeout, time.monotonic)
        while (wait := self.try_acquire(holder_id)) != 0:
            time.sleep(poller.pause(wait))

    def try_acquire(self, holder_id: str) -> float:
        """Take (or renew) a slot: 0.0 if held, else seconds until the first lease runs out."""
        held, wait_ms = self._run(holder_id, renew_only=False)
        return 0.0 if held else max(wait_ms / 1000, 0.001)

    def renew(self, holder_id: str) -> bool:
        held, _ = self._run(holder_id, renew_only=True)
        return held

    def release(self, holder_id: str) -> None:
        with self._errors:
            self._client.zrem(self.key, holder_id)

    def _run(self, holder_id: str, *, renew_only: bool) -> tuple[bool, int]:
        with self._errors:
            held, wait_ms = self._script(
                keys=[self.key],
                args=[holder_id, round(self.lease * 1000), self.limit,
                      "1" if renew_only else "0"],
            )
        return bool(held), int(wait_ms)

    def _keep(self, holding: Hold, done: threading.Event) -> None:
        """Renew the lease every lease / 3 until ``done``; log and go on if Redis fails."""
        while not done.wait(self.lease / 3):
            try:
                if not self.renew(holding.holder_id):
                    holding.lost = True
                    log.warning("concurrency limit %r: the lease of %s ran out before it was "
                                "renewed; another holder may have its slot", self.name,
                                holding.holder_id)
                    return
            except Exception as exc:  # a renewal loop must not die silently
                log.warning("concurrency limit %r: renewing %s failed (%s); retrying",
                            self.name, holding.holder_id, exc)
