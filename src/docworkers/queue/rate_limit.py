"""Cluster-wide limits enforced in Redis: a rate (token bucket) and a concurrency cap.

Workers on many machines call the same embedding endpoint or LLM; a limit kept per process
multiplies with the number of processes, so these live in Redis and every decision is one Lua
script on Redis's clock (no client clock skew, no read-then-write race).

Each limiter's key has a hash tag of its own (``dw:{ratelimit:<name>}:bucket``,
``dw:{concurrency:<name>}:holders``) rather than a queue's: a limit is a resource shared by
every queue that uses it, and its scripts touch no other key, so Redis Cluster may put it in
any slot. :mod:`docworkers.queue.rate_limit_sync` takes the same permits from threads.

Every refusal (a ``RateLimitedError``) is counted per process, by ``rate:<name>`` or
``concurrency:<name>`` (:func:`refusals`); worker heartbeats publish the counts for metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from docworkers.errors import ConfigurationError, RateLimitedError, RepositoryError
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import concurrency_key, rate_limit_key, validate_queue_name
from docworkers.queue.redis.scripts import register

__all__ = [
    "Hold",
    "RedisConcurrencyLimiter",
    "RedisRateLimiter",
    "concurrency_key",
    "rate_limit_key",
    "refusals",
]

log = logging.getLogger("docworkers.rate_limit")

_POLL_FIRST = 0.01  # a waiting holder polls from this ...
_POLL_CAP = 0.5  # ... doubling up to this (releases do not notify waiters)


def _valid_name(field: str, value: str) -> str:
    try:
        return validate_queue_name(value)
    except ConfigurationError:
        raise ConfigurationError(
            field, f"{value!r} is not a valid limiter name (1-128 of letters, digits, _.:-)"
        ) from None


# -- argument checks shared with rate_limit_sync -----------------------------------------------


def check_rate_args(name: str, namespace: str, rate: float, burst: int) -> str:
    """Validate a rate limiter's arguments; returns ``name``."""
    _valid_name("name", name)
    _valid_name("namespace", namespace)
    if isinstance(rate, bool) or not isinstance(rate, int | float) \
            or not math.isfinite(rate) or rate <= 0:
        raise ConfigurationError("rate", f"must be a positive number per second, got {rate!r}")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ConfigurationError("burst", f"must be an integer >= 1, got {burst!r}")
    return name


def check_concurrency_args(name: str, namespace: str, limit: int, lease: float) -> str:
    """Validate a concurrency limiter's arguments; returns ``name``."""
    _valid_name("name", name)
    _valid_name("namespace", namespace)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError("limit", f"must be an integer >= 1, got {limit!r}")
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease >= 0.1:
        raise ConfigurationError("lease", f"must be at least 0.1 seconds, got {lease!r}")
    return name


def check_tokens(tokens: int, burst: int, name: str) -> None:
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ConfigurationError("tokens", f"must be an integer >= 1, got {tokens!r}")
    if tokens > burst:
        raise ConfigurationError(
            "tokens", f"{tokens} is more than burst={burst} of rate limit "
            f"{name!r}: the bucket never holds that many"
        )


def check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ConfigurationError("timeout", f"must be >= 0 or None, got {timeout!r}")


class SlotPoller:
    """How a holder waits for a full concurrency limit, for the async and the sync client.

    Releases do not notify, so waiters poll with jittered doubling pauses, never sleeping past
    the moment the first lease runs out (``wait``) nor past the deadline; past the deadline
    :meth:`pause` raises RateLimitedError (and counts the refusal).
    """

    def __init__(self, name: str, limit: int, timeout: float | None,
                 clock: Callable[[], float]) -> None:
        self.name, self.limit, self.timeout, self.clock = name, limit, timeout, clock
        self.deadline = None if timeout is None else clock() + timeout
        self._pause = _POLL_FIRST

    def pause(self, wait: float) -> float:
        """Seconds to sleep before the next try, given the ``wait`` the script reported."""
        sleep = min(wait, self._pause) * random.uniform(0.5, 1.0)
        self._pause = min(self._pause * 2, _POLL_CAP)
        if self.deadline is None:
            return sleep
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            count_refusal(f"concurrency:{self.name}")
            raise RateLimitedError(
                self.name, wait, f"all {self.limit} slot(s) stayed busy for "
                f"timeout={self.timeout}s",
            )
        return min(sleep, remaining)


# -- refusals, counted per process for the workers' published stats -----------------------------

_refusals: Counter[str] = Counter()
_refusals_lock = threading.Lock()


def count_refusal(key: str) -> None:
    with _refusals_lock:
        _refusals[key] += 1


def refusals() -> dict[str, int]:
    """Permits refused by this process's limiters since it started, by ``rate:<name>`` and
    ``concurrency:<name>``."""
    with _refusals_lock:
        return dict(sorted(_refusals.items()))


class RedisRateLimiter:
    """At most ``burst`` immediate grants, then ``rate`` tokens per second, cluster-wide.

    ``acquire`` reserves its slot in the same round trip that checks it and then sleeps until
    the slot, so waiters are served in arrival order without polling. A task cancelled while it
    sleeps leaves its slot unused: the limit errs on the strict side, never the loose one.
    """

    def __init__(self, client: Redis, name: str, *, rate: float, burst: int,
                 namespace: str = "dw") -> None:
        self.name = check_rate_args(name, namespace, rate, burst)
        self.rate = float(rate)
        self.burst = burst
        self.key = rate_limit_key(name, namespace)
        self._client = client
        self._script = register(client, "rate_limit")
        self._errors = RedisErrors(f"rate limit {name!r}")

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
            count_refusal(f"rate:{self.name}")
            raise RateLimitedError(
                self.name, wait,
                f"{tokens} token(s) at {self.rate:g}/s (burst {self.burst}) need {wait:.3f}s, "
                f"more than timeout={timeout}s",
            )
        if wait > 0:
            await asyncio.sleep(wait)

    async def _take(self, tokens: int, *, max_wait: float | None) -> tuple[bool, float]:
        check_tokens(tokens, self.burst, self.name)
        limit_us = -1 if max_wait is None else math.floor(max_wait * 1e6)
        with self._errors:
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
        self.name = check_concurrency_args(name, namespace, limit, lease)
        self.limit = limit
        self.lease = float(lease)
        self.key = concurrency_key(name, namespace)
        self._client = client
        self._script = register(client, "concurrency")
        self._errors = RedisErrors(f"concurrency limit {name!r}")

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
                log.warning("concurrency limit %r: could not release %s (%s); the slot comes "
                            "back when its lease ends in %.1fs", self.name, holding.holder_id,
                            exc, self.lease)

    async def acquire(self, holder_id: str, *, timeout: float | None = None) -> None:
        """Take a slot for ``holder_id``, polling while the limit is full (see ``hold``)."""
        poller = SlotPoller(self.name, self.limit, timeout, asyncio.get_running_loop().time)
        # Polling, not an Event: the holders that release are in other processes.
        while (wait := await self.try_acquire(holder_id)) != 0:  # noqa: ASYNC110
            await asyncio.sleep(poller.pause(wait))

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
        with self._errors:
            await self._client.zrem(self.key, holder_id)  # the last one deletes the key

    async def holders(self) -> int:
        """How many slots are held now (expired leases not counted), for metrics."""
        with self._errors:
            seconds, micros = await self._client.time()
            now_ms = seconds * 1000 + micros // 1000
            return int(await self._client.zcount(self.key, f"({now_ms}", "+inf"))

    async def _run(self, holder_id: str, *, renew_only: bool) -> tuple[bool, int]:
        with self._errors:
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


def new_holder_id() -> str:
    """Host and pid first, so an operator looking at the zset sees who holds the slots."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
