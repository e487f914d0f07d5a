"""How an idle worker waits for work: BLMOVE on the queue's intake list, on its own connection.

A job pushed on the intake (intake.py) and every script that makes jobs ready (wake-up tokens,
pushed there too) end the wait; an idle worker blocks on that list instead of sleep-polling.
BLMOVE, not BLPOP: the entry it takes goes to the claimed list, where the next script absorbs
it (lua/_lib.lua), so a job entry taken by a worker that dies before reserving is not lost.
:meth:`Waiter.wait_and_reserve` sends the BLMOVE and the reserve script together: Redis runs the
script the moment the BLMOVE returns, woken or timed out, so a new job reaches an idle worker in
one round trip instead of two. One blocking key per queue (a worker waits on its own queue),
so the wait works on Redis Cluster too.

The waiter's connection has no per-operation timeout: one ``asyncio.timeout`` bounds each whole
exchange (the socket timeout plus the longest block), instead of redis-py's ``wait_for`` on the
send (a task per call on Python 3.11) and one timeout per reply read. An idle worker's pickup
runs that code between the job's arrival and its start.

Outside Redis Cluster, once redis-py has connected the waiter's connection (and read its CLIENT
ID), a :class:`~docworkers.queue.resp_wire.RespWire` takes its transport over: an exchange is
one write and one future, resolved with every reply once the last is in (parsed by hiredis as
redis-py would, error replies the same exceptions), instead of redis-py's send and read path.
A lost connection is connected again by redis-py before the next wait (CLIENT ID read again),
then taken over again. On a cluster the waiter keeps redis-py's path.

Such a wait must not be cancelled: once the BLMOVE has returned, the script may have leased jobs
whose reply would be lost (they would sit leased until the lease ran out). :meth:`interrupt`
ends a wait early instead, with CLIENT UNBLOCK from another connection, and the caller receives
the reservation as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from docworkers.errors import RepositoryError
from docworkers.queue.redis.clients import is_cluster
from docworkers.queue.redis.cluster import own_connection, unblock
from docworkers.queue.resp_wire import RespWire, raise_if_connection_ends, take_over

if TYPE_CHECKING:
    from docworkers.queue.protocol import Reservation
    from docworkers.queue.repository import RedisJobRepository

MAX_BLOCK = 1.0  # seconds one BLMOVE may block
# Bytes per socket read on the waiter's connection. asyncio's socket transport reads with
# recv(256 KiB) by default: a buffer that large is allocated (by mmap) and freed again on every
# read, about 8 µs, on the path of every pickup; a wait's replies are far smaller (a larger one
# is read in several reads).
READ_SIZE = 64 * 1024


def _read_in_smaller_pieces(conn: AbstractConnection) -> None:
    writer = getattr(conn, "_writer", None)  # redis-py's StreamWriter, once connected
    transport = None if writer is None else writer.transport
    if transport is not None and getattr(transport, "max_size", 0) > READ_SIZE:
        transport.max_size = READ_SIZE


class Waiter:
    """One worker's blocking wait for new work, on a connection of its own."""

    def __init__(self, repo: RedisJobRepository) -> None:
        self._repo = repo
        self._conn: AbstractConnection | None = None
        self._client_id: int | None = None  # of our connection, read on every (re)connect
        self._timeout: float | None = None  # the connection's socket timeout, taken off it
        self._raw = False  # exchanges go through a RespWire (not on a cluster, RESP2 only)
        self._wire: RespWire | None = None  # the connection's transport, taken over
        self._starter: Callable[[Reservation], None] | None = None  # see start_with()

    async def connect(self) -> None:
        if self._conn is not None:
            return
        with self._repo._errors:
            if is_cluster(self._repo.client):  # to the primary serving the queue's slot now
                conn = await own_connection(self._repo.client, self._repo.keys.prefix)
            else:
                pool = self._repo.client.connection_pool
                conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py
            # Each exchange runs under one timeout of ours instead (see the module docstring).
            self._timeout, conn.socket_timeout = conn.socket_timeout, None
            self._conn = conn
            conn.register_connect_callback(self._on_connect)  # type: ignore[no-untyped-call]
            _read_in_smaller_pieces(conn)
            await self._read_client_id(conn)  # the pool may hand out a connected connection
            self._raw = not is_cluster(self._repo.client) and conn.protocol in (2, "2")
            if self._raw:
                self._wire = take_over(conn)

    async def _on_connect(self, conn: AbstractConnection) -> None:
        _read_in_smaller_pieces(conn)  # a new transport
        await self._read_client_id(conn)

    async def _read_client_id(self, conn: AbstractConnection) -> None:
        async with asyncio.timeout(self._timeout):  # also inside _send's, on a reconnect
            await conn.send_command("CLIENT", "ID", check_health=False)
            self._client_id = int(await conn.read_response())

    def start_with(self, starter: Callable[[Reservation], None] | None) -> None:
        """Hand each reservation that :meth:`wait_and_reserve` makes to ``starter`` the moment
        its reply is in, one turn of the event loop before ``wait_and_reserve`` returns that
        same reservation (the caller tells it by identity): an idle worker's job then starts a
        turn sooner. Only through the RespWire (not on a cluster) and only for a reservation
        read without error; otherwise ``starter`` is not called. ``starter`` runs in the
        transport's read callback, outside any task; what it raises, ``wait_and_reserve``
        raises (the reservation was read in full: the connection stays)."""
        self._starter = starter

    async def wait(self, timeout: float) -> bool:
        """Block until woken or ``timeout`` (at most MAX_BLOCK) passes; True if woken."""
        block = self._block(timeout)
        (woken,) = await self._send([self._blmove(block)], block)
        return woken is not None

    async def wait_and_reserve(self, timeout: float, worker_id: str, max_jobs: int,
                               lease: float, default_max_retries: int | None = None, *,
                               min_priority: int | None = None) -> Reservation:
        """Block like :meth:`wait`, then reserve up to ``max_jobs``, in one round trip."""
        script, keys, args = self._repo._reserve_call(worker_id, max_jobs, lease,
                                                      default_max_retries, min_priority)
        block = self._block(timeout)
        early: list[Reservation | Exception] = []
        starter = self._starter if self._raw else None
        arrived = None
        if starter is not None:
            def arrived(replies: list[Any]) -> None:
                woken, reply = replies
                if isinstance(woken, BaseException) or isinstance(reply, BaseException) \
                        or (reply and isinstance(reply[0], BaseException)):
                    return  # _exchange raises it, or loads the script (NOSCRIPT)
                try:
                    reservation = self._repo._reservation(reply, worker_id)
                    early.append(reservation)
                    starter(reservation)
                except Exception as exc:  # raised below, where it was raised before
                    early[:] = [exc]
        _, reply = await self._send(
            [self._blmove(block), ("EVALSHA", script.sha, len(keys), *keys, *args)], block,
            arrived,
        )
        if early:
            if isinstance(early[0], Exception):
                raise early[0]
            return early[0]
        if isinstance(reply, NoScriptError):  # nothing ran: load the script and reserve now
            return await self._repo.reserve(worker_id, max_jobs, lease, default_max_retries,
                                            min_priority=min_priority)
        return self._repo._reservation(reply, worker_id)

    async def interrupt(self) -> None:
        """End a wait in progress as if it timed out (no-op when there is none)."""
        if self._client_id is not None:
            with self._repo._errors:
                if not is_cluster(self._repo.client):
                    await self._repo.client.client_unblock(self._client_id)
                elif self._conn is not None:  # on the node of our connection
                    await unblock(self._repo.client, self._conn, self._client_id)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._wire = None  # conn.disconnect() closes its transport
        if conn is not None:
            conn.deregister_connect_callback(self._on_connect)  # type: ignore[no-untyped-call]
            conn.socket_timeout = self._timeout  # as the pool gave it
            await conn.disconnect()
            if not is_cluster(self._repo.client):  # a cluster's is no pool's
                await self._repo.client.connection_pool.release(conn)

    async def _drop_after_error(self, conn: AbstractConnection) -> None:
        self._wire = None  # conn.disconnect() closes its transport
        await conn.disconnect(nowait=True)  # replies may be left unread
        if is_cluster(self._repo.client):  # after a failover the next wait goes to the
            await self.close()  # promoted replica, not the dead primary

    @staticmethod
    def _block(timeout: float) -> float:
        # At most MAX_BLOCK, well below the socket timeout; never 0, which blocks forever.
        return max(min(timeout, MAX_BLOCK), 0.001)

    def _blmove(self, block: float) -> tuple[Any, ...]:
        keys = self._repo.keys
        return ("BLMOVE", keys.intake, keys.claimed, "LEFT", "RIGHT", block)

    async def _send(self, commands: list[tuple[Any, ...]], block: float,
                    arrived: Callable[[list[Any]], None] | None = None) -> list[Any]:
        """Send ``commands`` in one write and read every reply, all within the socket timeout
        plus ``block`` (the BLMOVE's); error replies raise, except NOSCRIPT, which is returned
        (the caller knows how to recover). ``arrived``: see :meth:`RespWire.exchange` (only
        through the wire)."""
        if self._conn is None and is_cluster(self._repo.client):
            await self.connect()  # dropped after an error (below): ask who serves the queue now
        if self._conn is None:
            raise RepositoryError("the waiter is not connected; call connect() first")
        conn = self._conn
        limit = None if self._timeout is None else self._timeout + block
        with self._repo._errors:
            try:
                if self._raw:
                    replies = await self._exchange(conn, commands, limit, arrived)
                else:
                    replies = await self._read_replies(conn, commands, limit)
            except TimeoutError as exc:  # ours or the wire's timer: the server may be stuck
                await self._drop_after_error(conn)
                raise RedisTimeoutError(f"no reply from Redis within {limit} s") from exc
            except BaseException:
                await self._drop_after_error(conn)
                raise
        for reply in replies:
            if isinstance(reply, ResponseError) and not isinstance(reply, NoScriptError):
                if is_cluster(self._repo.client):  # e.g. MOVED: the slot has a new owner
                    await self.close()
                raise self._repo._errors.translate(reply) from reply
        return replies

    @staticmethod
    async def _read_replies(conn: AbstractConnection, commands: list[tuple[Any, ...]],
                            limit: float | None) -> list[Any]:
        """:meth:`_send` through redis-py (on a cluster, or RESP3); error replies returned."""
        replies: list[Any] = []
        async with asyncio.timeout(limit):
            await conn.send_packed_command(conn.pack_commands(commands))
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # read in full: the connection stays in step
                    replies.append(exc)
        return replies

    async def _exchange(self, conn: AbstractConnection, commands: list[tuple[Any, ...]],
                        limit: float | None,
                        arrived: Callable[[list[Any]], None] | None) -> list[Any]:
        """:meth:`_send` through the connection's :class:`RespWire` (not on a cluster): the
        same replies, and the same errors raised, as redis-py's path there."""
        wire = self._wire
        if wire is None or wire.lost:
            wire = await self._take_over_again(conn)
        replies = await wire.exchange(b"".join(conn.pack_commands(commands)), len(commands),
                                      limit, arrived)
        for reply in replies:
            raise_if_connection_ends(reply, conn)
        return replies

    async def _take_over_again(self, conn: AbstractConnection) -> RespWire:
        """Connect ``conn`` again (its transport was lost or dropped) and take it over."""
        self._wire = None
        await conn.disconnect(nowait=True)  # redis-py still holds the lost transport
        # redis-py's handshake, with its own timeouts and retries; _on_connect reads the new
        # CLIENT ID before the wire takes the transport.
        await conn.connect()  # type: ignore[no-untyped-call]  # redis-py
        self._wire = take_over(conn)
        return self._wire
