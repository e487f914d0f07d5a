"""Every Redis client docworkers opens, built from a URL with one set of connection settings.

The job repository (:meth:`RedisJobRepository.from_url`), the runtime (one asynchronous client
shared by the job and document repositories) and the synchronous client that worker threads use
for the cluster-wide limits of external services all come from here, so they time out, retry
and check their connections alike. Replies are decoded to ``str``.

A ``redis+sentinel://`` URL (:mod:`~docworkers.queue.redis.sentinel_url`) gives a client of the
master that its sentinels name: each new connection asks them where the master is, so after a
failover the connections that broke reconnect to the promoted replica (a command that met the
break is retried like any connection error).

A ``redis+cluster://`` URL (:mod:`~docworkers.queue.redis.cluster_url`) gives redis-py's
``RedisCluster``, which sends each command to the primary owning its keys' slot and follows the
cluster through failovers (a command that meets a dead primary is retried after the client
reads the slots again). It is returned under the ``Redis`` type: it offers the same commands,
and every key docworkers builds carries a hash tag, so what one script or pipeline touches sits
in one slot. The few places that need one connection of their own (the waiter) or every
primary (listings by SCAN) ask :func:`is_cluster`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from redis.sentinel import Sentinel

from docworkers.errors import ConfigurationError
from docworkers.queue.redis.cluster import keep_seeds
from docworkers.queue.redis.cluster_url import ClusterURL, is_cluster_url
from docworkers.queue.redis.packing import use_hiredis_packing, use_hiredis_packing_cluster
from docworkers.queue.redis.sentinel_connection import (
    AsyncSentinelConnection,
    SyncSentinelConnection,
)
from docworkers.queue.redis.sentinel_url import SentinelURL, is_sentinel_url

__all__ = ["DEFAULT_CLIENT_SETTINGS", "ClientSettings", "async_client", "is_cluster",
           "sync_client"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientSettings:
    """How a client talks to Redis. Durations are seconds.

    ``socket_timeout`` bounds every command; it must stay above the longest blocking wait
    (``waiter.MAX_BLOCK``, 1 s). After a server restart every pooled connection is dead, so a
    command that meets a *connection* error is sent again on a fresh connection, up to
    ``retries`` times with exponential backoff; a timeout is never retried (a timed-out script
    may have run; fencing covers replays).
    """

    socket_timeout: float = 10.0
    connect_timeout: float = 5.0
    health_check_interval: int = 30  # an idle connection is PINGed before reuse past this
    retries: int = 3
    backoff_base: float = 0.05
    backoff_cap: float = 1.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigurationError(field.name, f"must be a number >= 0, got {value!r}")
        if self.socket_timeout <= 0 or self.connect_timeout <= 0:
            raise ConfigurationError("socket_timeout", "timeouts must be positive")

    def options(self, retry: type[Retry] | type[AsyncRetry]) -> dict[str, Any]:
        """Keyword arguments of redis-py's ``from_url`` (``retry`` is its sync or async class)."""
        return {
            "decode_responses": True,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "health_check_interval": self.health_check_interval,
            "retry": retry(ExponentialBackoff(cap=self.backoff_cap, base=self.backoff_base),
                           self.retries),
            "retry_on_error": [RedisConnectionError],
        }

    def sentinel_options(self, retry: type[Retry] | type[AsyncRetry]) -> dict[str, Any]:
        """Keyword arguments of the clients that ask the sentinels: the same timeouts, but a
        sentinel that does not answer is not retried (the next one is asked instead)."""
        return {
            "decode_responses": True,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "retry": retry(ExponentialBackoff(cap=self.backoff_cap, base=self.backoff_base), 0),
        }


DEFAULT_CLIENT_SETTINGS = ClientSettings()


def async_client(url: str, settings: ClientSettings = DEFAULT_CLIENT_SETTINGS,
                 **options: Any) -> aioredis.Redis:
    """An asyncio client of ``url`` (``redis://``, ``rediss://``, ``unix://``,
    ``redis+sentinel://`` or ``redis+cluster://``), connecting lazily; ``options`` override
    redis-py keyword arguments. Commands are packed by hiredis."""
    kwargs = {**settings.options(AsyncRetry), **options}
    if is_cluster_url(url):
        return cast("aioredis.Redis", _async_cluster(ClusterURL.parse(url), kwargs))
    if is_sentinel_url(url):
        parts = SentinelURL.parse(url)
        sentinels = AsyncSentinel(  # type: ignore[no-untyped-call]  # redis-py
            list(parts.sentinels), sentinel_kwargs=settings.sentinel_options(AsyncRetry))
        master = sentinels.master_for(parts.master, redis_class=_AsyncSentinelMaster,
                                      connection_class=AsyncSentinelConnection,
                                      **_master_options(parts), **kwargs)
        master.sentinels = sentinels.sentinels
        return use_hiredis_packing(master)
    try:
        return use_hiredis_packing(aioredis.Redis.from_url(url, **kwargs))
    except ValueError as exc:
        raise _bad_url(url, exc) from exc


def sync_client(url: str, settings: ClientSettings = DEFAULT_CLIENT_SETTINGS,
                **options: Any) -> redis.Redis:
    """A thread-safe synchronous client of ``url``, connecting lazily (see :func:`async_client`)."""
    kwargs = {**settings.options(Retry), **options}
    if is_cluster_url(url):
        return cast("redis.Redis", _sync_cluster(ClusterURL.parse(url), kwargs))
    if is_sentinel_url(url):
        parts = SentinelURL.parse(url)
        sentinels = Sentinel(  # type: ignore[no-untyped-call]  # redis-py
            list(parts.sentinels), sentinel_kwargs=settings.sentinel_options(Retry))
        master: _SyncSentinelMaster = sentinels.master_for(  # type: ignore[no-untyped-call]
            parts.master, redis_class=_SyncSentinelMaster,
            connection_class=SyncSentinelConnection, **_master_options(parts), **kwargs)
        master.sentinels = sentinels.sentinels
        return master
    try:
        return redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise _bad_url(url, exc) from exc


def _async_cluster(parts: ClusterURL, kwargs: dict[str, Any]) -> AsyncRedisCluster:
    """The asyncio cluster client (returned as ``Redis``: see the module's doc)."""
    nodes = [AsyncClusterNode(host, port) for host, port in parts.nodes]
    client = AsyncRedisCluster(startup_nodes=nodes, **{**kwargs, **parts.options})
    keep_seeds(client, parts.nodes)
    return use_hiredis_packing_cluster(client)


def _sync_cluster(parts: ClusterURL, kwargs: dict[str, Any]) -> RedisCluster:
    nodes = [ClusterNode(host, port) for host, port in parts.nodes]  # type: ignore[no-untyped-call]
    client = RedisCluster(startup_nodes=nodes, **{**kwargs, **parts.options})
    keep_seeds(client, parts.nodes)
    return client


def is_cluster(client: object) -> bool:
    """True when ``client`` (from :func:`async_client` or :func:`sync_client`, or a pipeline of
    one) talks to a Redis Cluster."""
    from redis.asyncio.cluster import ClusterPipeline as AsyncClusterPipeline
    from redis.cluster import ClusterPipeline

    return isinstance(client, AsyncRedisCluster | RedisCluster | AsyncClusterPipeline
                      | ClusterPipeline)


def _master_options(parts: SentinelURL) -> dict[str, Any]:
    return {"db": parts.db, "username": parts.username, "password": parts.password}


class _AsyncSentinelMaster(aioredis.Redis):
    """The master's client, which also closes its clients of the sentinels."""

    sentinels: list[aioredis.Redis]

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in self.sentinels:
            await sentinel.aclose()


class _SyncSentinelMaster(redis.Redis):
    """The master's client, which also closes its clients of the sentinels."""

    sentinels: list[redis.Redis]

    def close(self) -> None:
        super().close()
        for sentinel in self.sentinels:
            sentinel.close()


def _bad_url(url: str, exc: ValueError) -> ConfigurationError:
    from docworkers.queue.redis.errors import redacted

    return ConfigurationError("redis_url", f"{redacted(url)!r} is not a Redis URL: {exc}")
