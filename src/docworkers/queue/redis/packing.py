"""Pack Redis commands in C (hiredis) on redis-py's asyncio connections.

redis-py's sync client packs commands with hiredis when it is installed, but its asyncio
connections pack in pure Python, re-copying a growing buffer for every argument. That
dominated the client's time in a bulk enqueue (8 arguments per job) and in completion batches
(3 per job). :func:`use_hiredis_packing` gives a client's pool the same connection classes,
packing with hiredis as the sync client does; without hiredis it changes nothing.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.utils import HIREDIS_AVAILABLE

from docworkers.queue.redis.sentinel_connection import AsyncSentinelConnection

if HIREDIS_AVAILABLE:  # redis[hiredis] is a dependency; the check is redis-py's own
    from hiredis import pack_command

_SERIALIZER = HiredisRespSerializer()


class _HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0].encode() if isinstance(args[0], str) else args[0]
        try:  # a command name may hold several words ("CONFIG GET"): send them apart
            return [pack_command((*name.split(), *args[1:]))]
        except TypeError:  # bytearray or memoryview arguments, or invalid ones (DataError)
            packed: list[bytes] = _SERIALIZER.pack(*args)
            return packed


class HiredisConnection(_HiredisPacking, Connection):
    pass


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    pass


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


class HiredisSentinelConnection(_HiredisPacking, AsyncSentinelConnection):
    pass


class ClusterConnection(Connection):
    """A connection of a cluster client's node. The client closes every node's connections
    when it reads the slots again (after a connection error, e.g. a dead primary), also those
    another task is about to write on; redis-py then fails with an AttributeError on the
    missing socket, which nothing retries. It is a ConnectionError here, which the client
    retries on the new topology (nothing was sent)."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except AttributeError as exc:
            raise RedisConnectionError(f"the connection was closed under a command: {exc}") \
                from exc


class HiredisClusterConnection(_HiredisPacking, ClusterConnection):
    pass


_FASTER: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: HiredisConnection,
    SSLConnection: HiredisSSLConnection,
    UnixDomainSocketConnection: HiredisUnixConnection,
    AsyncSentinelConnection: HiredisSentinelConnection,  # a master found by Sentinel
}


def use_hiredis_packing(client: Redis) -> Redis:
    """Make new connections of ``client``'s pool pack with hiredis (if installed); returns it.

    Only redis-py's own connection classes are swapped; a custom class is left alone.
    """
    pool = client.connection_pool
    if HIREDIS_AVAILABLE:
        pool.connection_class = _FASTER.get(pool.connection_class, pool.connection_class)
    return client


def use_hiredis_packing_cluster(client: RedisCluster) -> RedisCluster:
    """The same for a cluster client, with :class:`ClusterConnection`: the connections of
    every node, found now or later."""
    connection_class = HiredisClusterConnection if HIREDIS_AVAILABLE else ClusterConnection
    if client.connection_kwargs["connection_class"] is Connection:  # not TLS, nor custom
        client.connection_kwargs["connection_class"] = connection_class  # shared with the
        for node in client.startup_nodes:  # nodes manager: nodes found later get it too
            node.connection_class = connection_class
    return client
