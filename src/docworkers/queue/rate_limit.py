"""Cluster-wide limits enforced in Redis: a rate (token bucket) and a concurrency cap.

Workers on many machines call the same embedding endpoint or LLM; a limit kept per process
multiplies with the number of processes, so these live in Redis and every decision is one Lua
script on Redis's clock (no client clock skew, no read-then-write race).

Each limiter's key has a hash tag of its own (``dw:{ratelimit:<name>}:bucket``,
``dw:{concurrency:<name>}:holders``) rather than a queue's: a limit is a resource shared by
every queue that uses it, and its scripts touch no other key, so Redis Cluster may put it in
any slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from docworkers.errors import ConfigurationError, RateLimitedError, RepositoryError
from docworkers.queue.keys import validate_queue_name
from docworkers.queue.redis_errors import translated_errors
from docworkers.queue.scripts import script_source

__all__ = [
    "Hold",
    "RedisConcurrencyLimiter",
    "RedisRateLimiter",
    "concurrency_key",
    "rate_limit_key",
]

log = logging.getLogger("docworkers.rate_limit")

_POLL_FIRST = 0.01  # a waiting holder polls from this ...
_POLL_CAP = 0.5  # ... doubling up to this (releases do not notify waiters)


def rate_limit_key(name: str, namespace: str = "dw") -> str:
    return f"{namespace}:{{ratelimit:{name}}}:bucket"


def concurrency_key(name: str, namespace: str = "dw") -> str:
    return f"{namespace}:{{concurrency:{name}}}:holders"


def _valid_name(field: str, value: str) -> str:
    try:
        return validate_queue_name(value)
    except ConfigurationError:
        raise ConfigurationError(
            field, f"{value!r} is not a valid limiter name (1-128 of letters, digits, _.:-)"
        ) from None


class RedisRateLimiter:
    """At most ``burst`` immediate grants, then ``rate`` tokens per second, cluster-wide.

    ``acquire`` reserves its slot in the same round trip that checks it and then sleeps until
    the slot, so waiters are served in arrival order without polling. A task cancelled while it
    sleeps leaves its slot unused: the limit errs on the strict side, never the loose one.
    """

    def __init__(self, client: Redis, name: str, *, rate: float, burst: int,
                 namespace: str = "dw") -> None:
        self.name = _valid_name("name", name)
        _valid_name("namespace", namespace)
        if isinstance(rate, bool) or not isinstance(rate, int | float) \
                or not math.isfinite(rate) or rate <= 0:
            raise ConfigurationError("rate", f"must be a positive number per second, got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError("burst", f"must be an integer >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self.key = rate_limit_key(name, namespace)
        self._client = client
        self._script = client.register_script(script_source("rate_limit"))

    async def try_acquire(self, tokens: int = 1) -> float:
        """Take ``tokens`` if they are there now: 0.0 if granted, else seconds until they are."""
        granted, wait = await self._take(tokens, max_wait=0.0)
        return 0.0 if granted else wait

    async def acquire(self, tokens: int = 1, *, timeout: float | None = None) -> None:
        """Wait until ``tokens`` are granted; RateLimitedError if that takes over ``timeout``.

        The error comes at once, without sleeping, when the wait is already known to be too
        long, and then nothing is taken.
        """
        if timeout is not None and timeout < 0:
            raise ConfigurationError("timeout", f"must be >= 0 or None, got {timeout!r}")
        granted, wait = await self._take(tokens, max_wait=timeout)
        if not granted:
            raise RateLimitedError(
                self.name, wait,
                f"{tokens} token(s) at {self.rate:g}/s (burst {self.burst}) need {wait:.3f}s, "
                f"more than timeout={timeout}s",
            )
        if wait > 0:
            await asyncio.sleep(wait)

    async def _take(self, tokens: int, *, max_wait: float | None) -> tuple[bool, float]:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ConfigurationError("tokens", f"must be an integer >= 1, got {tokens!r}")
        if tokens > self.burst:
            raise ConfigurationError(
                "tokens", f"{tokens} is more than burst={self.burst} of rate limit "
                f"{self.name!r}: the bucket never holds that many"
            )
        limit_us = -1 if max_wait is None else math.floor(max_wait * 1e6)
        async with translated_errors(f"rate limit {self.name!r}"):
            granted, wait_us = await self._script(
                keys=[self.key], args=[repr(1e6 / self.rate), self.burst, tokens, limit_us]
            )
        return bool(granted), int(wait_us) / 1e6


@dataclass(slots=True)
class Hold:
    """One held slot of a concurrency limit. ``lost`` turns True if the lease could not be
    renewed in time (Redis was unreachable for a whole lease), so the slot may be someone
    else's now."""

    limiter: str
    holder_id: str
    lost: bool = False


class RedisConcurrencyLimiter:
    """At most ``limit`` holders at once across the cluster.

    A slot is a lease: ``hold()`` renews it every lease / 3 while the block runs, and a holder
    that dies without releasing gives its slot back when the lease runs out.
    """

    def __init__(self, client: Redis, name: str, limit: int, lease: float = 30.0, *,
                 namespace: str = "dw") -> None:
        self.name = _valid_name("name", name)
        _valid_name("namespace", namespace)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError("limit", f"must be an integer >= 1, got {limit!r}")
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease >= 0.1:
            raise ConfigurationError("lease", f"must be at least 0.1 seconds, got {lease!r}")
        self.limit = limit
        self.lease = float(lease)
        self.key = concurrency_key(name, namespace)
        self._client = client
        self._script = client.register_script(script_source("concurrency"))

    @contextlib.asynccontextmanager
    async def hold(self, *, timeout: float | None = None) -> AsyncIterator[Hold]:
        """Hold a slot for the block; RateLimitedError if none is free within ``timeout``."""
        holding = Hold(self.name, _new_holder_id())
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
                log.warning("concurrency limit %r: could not release %s (%s); the slot comes "
                            "back when its lease ends in %.1fs", self.name, holding.holder_id,
                            exc, self.lease)

    async def acquire(self, holder_id: str, *, timeout: float | None = None) -> None:
        """Take a slot for ``holder_id``, polling while the limit is full (see ``hold``)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause = _POLL_FIRST
        while True:
            wait = await self.try_acquire(holder_id)
            if wait == 0:
                return
            # Releases do not notify: poll with jittered doubling pauses, never sleeping past
            # the moment the first lease runs out.
            sleep = min(wait, pause) * random.uniform(0.5, 1.0)
            pause = min(pause * 2, _POLL_CAP)
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise RateLimitedError(
                        self.name, wait, f"all {self.limit} slot(s) stayed busy for "
                        f"timeout={timeout}s",
                    )
                sleep = min(sleep, remaining)
            await asyncio.sleep(sleep)

    async def try_acquire(self, holder_id: str) -> float:
        """Take (or renew) a slot for ``holder_id``: 0.0 if held, else seconds until the
        first lease runs out (a slot may free sooner, by a release)."""
        held, wait_ms = await self._run(holder_id, renew_only=False)
        return 0.0 if held else max(wait_ms / 1000, 0.001)

    async def renew(self, holder_id: str) -> bool:
        """Extend ``holder_id``'s lease; False if it had already run out (slot lost)."""
        held, _ = await self._run(holder_id, renew_only=True)
        return held

    async def release(self, holder_id: str) -> None:
        async with translated_errors(f"concurrency limit {self.name!r}"):
            await self._client.zrem(self.key, holder_id)  # the last one deletes the key

    async def holders(self) -> int:
        """How many slots are held now (expired leases not counted), for metrics."""
        async with translated_errors(f"concurrency limit {self.name!r}"):
            seconds, micros = await self._client.time()
            now_ms = seconds * 1000 + micros // 1000
            return int(await self._client.zcount(self.key, f"({now_ms}", "+inf"))

    async def _run(self, holder_id: str, *, renew_only: bool) -> tuple[bool, int]:
        async with translated_errors(f"concurrency limit {self.name!r}"):
            held, wait_ms = await self._script(
                keys=[self.key],
                args=[holder_id, round(self.lease * 1000), self.limit,
                      "1" if renew_only else "0"],
            )
        return bool(held), int(wait_ms)

    async def _keep(self, holding: Hold) -> None:
        """Renew the lease every lease / 3 until cancelled; log and go on if Redis fails."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if not await self.renew(holding.holder_id):
                    holding.lost = True
                    log.warning("concurrency limit %r: the lease of %s ran out before it was "
                                "renewed; another holder may have its slot", self.name,
                                holding.holder_id)
                    return
            except Exception as exc:  # a renewal loop must not die silently
                log.warning("concurrency limit %r: renewing %s failed (%s); retrying",
                            self.name, holding.holder_id, exc)


def _new_holder_id() -> str:
    """Host and pid first, so an operator looking at the zset sees who holds the slots."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
