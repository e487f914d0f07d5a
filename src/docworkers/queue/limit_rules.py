"""What the cluster-wide limits decide, without their I/O.

The limiters come in two flavours that must agree exactly: asyncio ones
(:mod:`docworkers.queue.rate_limit`) for workers, and thread ones
(:mod:`docworkers.queue.rate_limit_sync`) for the synchronous HTTP clients of external
services. Everything but the round trip and the waiting lives here, once: argument checks, the
scripts' arguments and replies, how a waiter polls, what a refusal says and counts, and what a
holder logs when its lease goes wrong.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript, Script

from docworkers.errors import ConfigurationError, RateLimitedError, RepositoryError
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import concurrency_key, rate_limit_key, validate_queue_name

log = logging.getLogger("docworkers.rate_limit")

C = TypeVar("C", redis.Redis, aioredis.Redis)
S = TypeVar("S", Script, AsyncScript)

_POLL_FIRST = 0.01  # a waiting holder polls from this ...
_POLL_CAP = 0.5  # ... doubling up to this (releases do not notify waiters)


# -- argument checks -----------------------------------------------------------------------------


def _valid_name(field: str, value: str) -> str:
    try:
        return validate_queue_name(value)
    except ConfigurationError:
        raise ConfigurationError(
            field, f"{value!r} is not a valid limiter name (1-128 of letters, digits, _.:-)"
        ) from None


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


# -- the rate limit (rate_limit.lua) -------------------------------------------------------------


class RateRules(Generic[S]):
    """A cluster-wide rate limit: at most ``burst`` immediate grants, then ``rate`` tokens per
    second. Subclasses send :meth:`_request` with ``_script`` and wait as the reply says."""

    unit = "token"  # what one token pays for, in refusal messages

    def __init__(self, name: str, *, rate: float, burst: int, namespace: str,
                 script: S) -> None:
        self.name = check_rate_args(name, namespace, rate, burst)
        self.rate = float(rate)
        self.burst = burst
        self.key = rate_limit_key(name, namespace)
        self._script: S = script
        self._errors = RedisErrors(f"rate limit {name!r}")

    def _request(self, tokens: int, max_wait: float | None) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of rate_limit.lua taking ``tokens``, waiting at most ``max_wait``
        seconds (None: any wait)."""
        check_tokens(tokens, self.burst, self.name)
        limit_us = -1 if max_wait is None else math.floor(max_wait * 1e6)
        return [self.key], [repr(1e6 / self.rate), self.burst, tokens, limit_us]

    @staticmethod
    def _granted(reply: Sequence[Any]) -> tuple[bool, float]:
        """(granted, seconds to wait) from rate_limit.lua's reply."""
        granted, wait_us = reply
        return bool(granted), int(wait_us) / 1e6

    def _refused(self, tokens: int, wait: float, timeout: float | None) -> RateLimitedError:
        """The error of a refused request, counted as a refusal."""
        count_refusal(f"rate:{self.name}")
        return RateLimitedError(
            self.name, wait,
            f"{tokens} {self.unit}(s) at {self.rate:g}/s (burst {self.burst}) need "
            f"{wait:.3f}s, more than timeout={timeout}s",
        )


# -- the concurrency limit (concurrency.lua) -----------------------------------------------------


@dataclass(slots=True)
class Hold:
    """One held slot of a concurrency limit. ``lost`` turns True if the lease could not be
    renewed in time (Redis was unreachable for a whole lease), so the slot may be someone
    else's now."""

    limiter: str
    holder_id: str
    lost: bool = False


def new_holder_id() -> str:
    """Host and pid first, so an operator looking at the zset sees who holds the slots."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class SlotPoller:
    """How a holder waits for a full concurrency limit.

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


class ConcurrencyRules(Generic[C, S]):
    """At most ``limit`` holders at once across the cluster, each slot a lease of ``lease``
    seconds that its holder renews every lease / 3. Subclasses send :meth:`_request` with
    ``_script``, poll with a :class:`SlotPoller` and renew in the background."""

    def __init__(self, client: C, name: str, limit: int, lease: float, *, namespace: str,
                 script: S) -> None:
        self.name = check_concurrency_args(name, namespace, limit, lease)
        self.limit = limit
        self.lease = float(lease)
        self.key = concurrency_key(name, namespace)
        self._client: C = client
        self._script: S = script
        self._errors = RedisErrors(f"concurrency limit {name!r}")

    def _request(self, holder_id: str, *, renew_only: bool) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of concurrency.lua taking (or only renewing) a slot."""
        return [self.key], [holder_id, round(self.lease * 1000), self.limit,
                            "1" if renew_only else "0"]

    @staticmethod
    def _held(reply: Sequence[Any]) -> tuple[bool, float]:
        """(held, seconds until the first lease runs out, at least 1 ms when not held) from
        concurrency.lua's reply."""
        held, wait_ms = reply
        return bool(held), 0.0 if held else max(int(wait_ms) / 1000, 0.001)

    def _lost(self, holding: Hold) -> None:
        holding.lost = True
        log.warning("concurrency limit %r: the lease of %s ran out before it was renewed; "
                    "another holder may have its slot", self.name, holding.holder_id)

    def _renewal_failed(self, holding: Hold, exc: Exception) -> None:
        log.warning("concurrency limit %r: renewing %s failed (%s); retrying", self.name,
                    holding.holder_id, exc)

    def _release_failed(self, holding: Hold, exc: RepositoryError) -> None:
        log.warning("concurrency limit %r: could not release %s (%s); the slot comes back "
                    "when its lease ends in %.1fs", self.name, holding.holder_id, exc,
                    self.lease)
