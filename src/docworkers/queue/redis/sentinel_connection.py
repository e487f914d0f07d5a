"""Connections to the master that Sentinel names, which ask again on every reconnect.

redis-py's ``SentinelManagedConnection`` asks the sentinels for the master's address only when
its pool connects it. A connection that reconnects by itself (the waiter's own connection
sending its next BLPOP, a command retried on the same connection after a connection error)
goes through ``connect_check_health`` instead, which dials the address it had: after a
failover that is the dead master, forever. These classes send every such reconnect through the
sentinels too.
"""

from __future__ import annotations

from redis.asyncio.sentinel import SentinelManagedConnection as AsyncManagedConnection
from redis.sentinel import SentinelManagedConnection

__all__ = ["AsyncSentinelConnection", "SyncSentinelConnection"]


class AsyncSentinelConnection(AsyncManagedConnection):
    async def connect_check_health(self, check_health: bool = True,
                                   retry_socket_connect: bool = True) -> None:
        # redis-py's connect_to() calls back with retry_socket_connect=False, once it has the
        # master's address; any other caller is a reconnect that must ask for it first.
        if retry_socket_connect and not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]  # redis-py
            return
        await super().connect_check_health(check_health, retry_socket_connect)


class SyncSentinelConnection(SentinelManagedConnection):
    def connect_check_health(self, check_health: bool = True,
                             retry_socket_connect: bool = True) -> None:
        if retry_socket_connect and self._sock is None:  # see AsyncSentinelConnection
            self.connect()  # type: ignore[no-untyped-call]  # redis-py
            return
        super().connect_check_health(check_health, retry_socket_connect)
