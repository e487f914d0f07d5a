"""The cluster-wide limits of :mod:`docworkers.queue.rate_limit`, for synchronous code.

The HTTP clients of external services (the OpenAI-compatible embedder, the LLM enricher) are
synchronous and run in worker threads. These classes take the same permits, with the same Lua
scripts and keys, through a synchronous redis-py client (thread-safe), so threads and event
loops of every process share one limit. Waits are ``time.sleep``: call them from a thread,
never from an event loop.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import redis
from redis.commands.core import Script

from docworkers.errors import RepositoryError
from docworkers.queue.limit_rules import (
    ConcurrencyRules,
    Hold,
    RateRules,
    SlotPoller,
    check_timeout,
    new_holder_id,
)
from docworkers.queue.redis.scripts import register

__all__ = ["SyncConcurrencyLimiter", "SyncRateLimiter"]


class SyncRateLimiter(RateRules[Script]):
    """:class:`~docworkers.queue.rate_limit.RedisRateLimiter` for threads: at most ``burst``
    immediate grants, then ``rate`` per second, cluster-wide."""

    unit = "call"

    def __init__(self, client: redis.Redis, name: str, *, rate: float, burst: int,
                 namespace: str = "dw") -> None:
        super().__init__(name, rate=rate, burst=burst, namespace=namespace,
                         script=register(client, "rate_limit"))

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
            raise self._refused(tokens, wait, timeout)
        if wait > 0:
            time.sleep(wait)

    def _take(self, tokens: int, *, max_wait: float | None) -> tuple[bool, float]:
        keys, args = self._request(tokens, max_wait)
        with self._errors:
            return self._granted(self._script(keys=keys, args=args))


class SyncConcurrencyLimiter(ConcurrencyRules[redis.Redis, Script]):
    """:class:`~docworkers.queue.rate_limit.RedisConcurrencyLimiter` for threads: at most
    ``limit`` holders at once across the cluster, each slot a lease renewed while held."""

    def __init__(self, client: redis.Redis, name: str, limit: int, lease: float = 30.0, *,
                 namespace: str = "dw") -> None:
        super().__init__(client, name, limit, lease, namespace=namespace,
                         script=register(client, "concurrency"))

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
                self._release_failed(holding, exc)

    def acquire(self, holder_id: str, *, timeout: float | None = None) -> None:
        """Take a slot for ``holder_id``, polling while the limit is full."""
        check_timeout(timeout)
        poller = SlotPoller(self.name, self.limit, timeout, time.monotonic)
        while (wait := self.try_acquire(holder_id)) != 0:
            time.sleep(poller.pause(wait))

    def try_acquire(self, holder_id: str) -> float:
        """Take (or renew) a slot: 0.0 if held, else seconds until the first lease runs out."""
        return self._run(holder_id, renew_only=False)[1]

    def renew(self, holder_id: str) -> bool:
        return self._run(holder_id, renew_only=True)[0]

    def release(self, holder_id: str) -> None:
        with self._errors:
            self._client.zrem(self.key, holder_id)

    def _run(self, holder_id: str, *, renew_only: bool) -> tuple[bool, float]:
        keys, args = self._request(holder_id, renew_only=renew_only)
        with self._errors:
            return self._held(self._script(keys=keys, args=args))

    def _keep(self, holding: Hold, done: threading.Event) -> None:
        """Renew the lease every lease / 3 until ``done``; log and go on if Redis fails."""
        while not done.wait(self.lease / 3):
            try:
                if not self.renew(holding.holder_id):
                    self._lost(holding)
                    return
            except Exception as exc:  # a renewal loop must not die silently
                self._renewal_failed(holding, exc)
