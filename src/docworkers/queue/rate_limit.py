"""Cluster-wide limits enforced in Redis: a rate (token bucket) and a concurrency cap.

Workers on many machines call the same embedding endpoint or LLM; a limit kept per process
multiplies with the number of processes, so these live in Redis and every decision is one Lua
script on Redis's clock (no client clock skew, no read-then-write race).

Each limiter's key has a hash tag of its own (``dw:{ratelimit:<name>}:bucket``,
``dw:{concurrency:<name>}:holders``) rather than a queue's: a limit is a resource shared by
every queue that uses it, and its scripts touch no other key, so Redis Cluster may put it in
any slot. :mod:`docworkers.queue.rate_limit_sync` takes the same permits from threads; what
both decide is in :mod:`docworkers.queue.limit_rules`.

Every refusal (a ``RateLimitedError``) is counted per process, by ``rate:<name>`` or
``concurrency:<name>`` (:func:`refusals`); worker heartbeats publish the counts for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from docworkers.errors import RepositoryError
from docworkers.queue.limit_rules import (
    ConcurrencyRules,
    Hold,
    RateRules,
    SlotPoller,
    check_timeout,
    new_holder_id,
    refusals,
)
from docworkers.queue.redis.keys import concurrency_key, rate_limit_key
from docworkers.queue.redis.scripts import register

__all__ = [
    "Hold",
    "RedisConcurrencyLimiter",
    "RedisRateLimiter",
    "concurrency_key",
    "rate_limit_key",
    "refusals",
]


class RedisRateLimiter(RateRules[AsyncScript]):
    """At most ``burst`` immediate grants, then ``rate`` tokens per second, cluster-wide.

    ``acquire`` reserves its slot in the same round trip that checks it and then sleeps until
    the slot, so waiters are served in arrival order without polling. A task cancelled while it
    sleeps leaves its slot unused: the limit errs on the strict side, never the loose one.
    """

    def __init__(self, client: Redis, name: str, *, rate: float, burst: int,
                 namespace: str = "dw") -> None:
        super().__init__(name, rate=rate, burst=burst, namespace=namespace,
                         script=register(client, "rate_limit"))

    async def try_acquire(self, tokens: int = 1) -> float:
        """Take ``tokens`` if they are there now: 0.0 if granted, else seconds until they are."""
        granted, wait = await self._take(tokens, max_wait=0.0)
        return 0.0 if granted else wait

    async def acquire(self, tokens: int = 1, *, timeout: float | None = None) -> None:
        """Wait until ``tokens`` are granted; RateLimitedError if that takes over ``timeout``.

        The error comes at once, without sleeping, when the wait is already known to be too
        long, and then nothing is taken.
        """
        check_timeout(timeout)
        granted, wait = await self._take(tokens, max_wait=timeout)
        if not granted:
            raise self._refused(tokens, wait, timeout)
        if wait > 0:
            await asyncio.sleep(wait)

    async def _take(self, tokens: int, *, max_wait: float | None) -> tuple[bool, float]:
        keys, args = self._request(tokens, max_wait)
        with self._errors:
            return self._granted(await self._script(keys=keys, args=args))


class RedisConcurrencyLimiter(ConcurrencyRules[Redis, AsyncScript]):
    """At most ``limit`` holders at once across the cluster.

    A slot is a lease: ``hold()`` renews it every lease / 3 while the block runs, and a holder
    that dies without releasing gives its slot back when the lease runs out.
    """

    def __init__(self, client: Redis, name: str, limit: int, lease: float = 30.0, *,
                 namespace: str = "dw") -> None:
        super().__init__(client, name, limit, lease, namespace=namespace,
                         script=register(client, "concurrency"))

    @contextlib.asynccontextmanager
    async def hold(self, *, timeout: float | None = None) -> AsyncIterator[Hold]:
        """Hold a slot for the block; RateLimitedError if none is free within ``timeout``."""
        holding = Hold(self.name, new_holder_id())
        await self.acquire(holding.holder_id, timeout=timeout)
        renewer = asyncio.create_task(self._keep(holding), name=f"hold-{self.name}")
        try:
            yield holding
        finally:
            renewer.cancel()
            await asyncio.wait([renewer])
            try:
                await asyncio.shield(self.release(holding.holder_id))
            except RepositoryError as exc:
                self._release_failed(holding, exc)

    async def acquire(self, holder_id: str, *, timeout: float | None = None) -> None:
        """Take a slot for ``holder_id``, polling while the limit is full (see ``hold``)."""
        poller = SlotPoller(self.name, self.limit, timeout, asyncio.get_running_loop().time)
        # Polling, not an Event: the holders that release are in other processes.
        while (wait := await self.try_acquire(holder_id)) != 0:  # noqa: ASYNC110
            await asyncio.sleep(poller.pause(wait))

    async def try_acquire(self, holder_id: str) -> float:
        """Take (or renew) a slot for ``holder_id``: 0.0 if held, else seconds until the
        first lease runs out (a slot may free sooner, by a release)."""
        return (await self._run(holder_id, renew_only=False))[1]

    async def renew(self, holder_id: str) -> bool:
        """Extend ``holder_id``'s lease; False if it had already run out (slot lost)."""
        return (await self._run(holder_id, renew_only=True))[0]

    async def release(self, holder_id: str) -> None:
        with self._errors:
            await self._client.zrem(self.key, holder_id)  # the last one deletes the key

    async def holders(self) -> int:
        """How many slots are held now (expired leases not counted), for metrics."""
        with self._errors:
            seconds, micros = await self._client.time()
            now_ms = seconds * 1000 + micros // 1000
            return int(await self._client.zcount(self.key, f"({now_ms}", "+inf"))

    async def _run(self, holder_id: str, *, renew_only: bool) -> tuple[bool, float]:
        keys, args = self._request(holder_id, renew_only=renew_only)
        with self._errors:
            return self._held(await self._script(keys=keys, args=args))

    async def _keep(self, holding: Hold) -> None:
        """Renew the lease every lease / 3 until cancelled; log and go on if Redis fails."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if not await self.renew(holding.holder_id):
                    self._lost(holding)
                    return
            except Exception as exc:  # a renewal loop must not die silently
                self._renewal_failed(holding, exc)
