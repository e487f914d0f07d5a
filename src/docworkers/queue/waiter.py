"""How an idle worker waits for work: BLMOVE on the queue's intake list, on its own connection.

A job pushed on the intake (intake.py) and every script that makes jobs ready (wake-up tokens,
pushed there too) end the wait; an idle worker blocks on that list instead of sleep-polling.
BLMOVE, not BLPOP: the entry it takes goes to the claimed list, where the next script absorbs
it (lua/_lib.lua), so a job entry taken by a worker that dies before reserving is not lost.
:meth:`Waiter.wait_and_reserve` sends the BLMOVE and the reserve script together: Redis runs the
script the moment the BLMOVE returns, woken or timed out, so a new job reaches an idle worker in
one round trip instead of two. One blocking key per queue (a worker waits on its own queue),
so the wait works on Redis Cluster too.

Such a wait must not be cancelled: once the BLMOVE has returned, the script may have leased jobs
whose reply would be lost (they would sit leased until the lease ran out). :meth:`interrupt`
ends a wait early instead, with CLIENT UNBLOCK from another connection, and the caller receives
the reservation as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError

from docworkers.errors import RepositoryError
from docworkers.queue.redis.clients import is_cluster
from docworkers.queue.redis.cluster import own_connection, unblock

if TYPE_CHECKING:
    from docworkers.queue.protocol import Reservation
    from docworkers.queue.repository import RedisJobRepository

MAX_BLOCK = 1.0  # seconds one BLMOVE may block


class Waiter:
    """One worker's blocking wait for new work, on a connection of its own."""

    def __init__(self, repo: RedisJobRepository) -> None:
        self._repo = repo
        self._conn: AbstractConnection | None = None
        self._client_id: int | None = None  # of our connection, read on every (re)connect

    async def connect(self) -> None:
        if self._conn is not None:
            return
        with self._repo._errors:
            if is_cluster(self._repo.client):  # to the primary serving the queue's slot now
                conn = await own_connection(self._repo.client, self._repo.keys.prefix)
            else:
                pool = self._repo.client.connection_pool
                conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py
            self._conn = conn
            conn.register_connect_callback(self._on_connect)  # type: ignore[no-untyped-call]
            await self._read_client_id(conn)  # the pool may hand out a connected connection

    async def _on_connect(self, conn: AbstractConnection) -> None:
        await self._read_client_id(conn)

    async def _read_client_id(self, conn: AbstractConnection) -> None:
        await conn.send_command("CLIENT", "ID", check_health=False)
        self._client_id = int(await conn.read_response())

    async def wait(self, timeout: float) -> bool:
        """Block until woken or ``timeout`` (at most MAX_BLOCK) passes; True if woken."""
        (woken,) = await self._send([self._blmove(timeout)])
        return woken is not None

    async def wait_and_reserve(self, timeout: float, worker_id: str, max_jobs: int,
                               lease: float, default_max_retries: int | None = None, *,
                               min_priority: int | None = None) -> Reservation:
        """Block like :meth:`wait`, then reserve up to ``max_jobs``, in one round trip."""
        script, keys, args = self._repo._reserve_call(worker_id, max_jobs, lease,
                                                      default_max_retries, min_priority)
        _, reply = await self._send(
            [self._blmove(timeout), ("EVALSHA", script.sha, len(keys), *keys, *args)]
        )
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
        if conn is not None:
            conn.deregister_connect_callback(self._on_connect)  # type: ignore[no-untyped-call]
            await conn.disconnect()
            if not is_cluster(self._repo.client):  # a cluster's is no pool's
                await self._repo.client.connection_pool.release(conn)

    def _blmove(self, timeout: float) -> tuple[Any, ...]:
        # At most MAX_BLOCK, well below the socket timeout; never 0, which blocks forever.
        keys = self._repo.keys
        return ("BLMOVE", keys.intake, keys.claimed, "LEFT", "RIGHT",
                max(min(timeout, MAX_BLOCK), 0.001))

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` in one write and read every reply; error replies raise, except
        NOSCRIPT, which is returned (the caller knows how to recover)."""
        if self._conn is None and is_cluster(self._repo.client):
            await self.connect()  # dropped after an error (below): ask who serves the queue now
        if self._conn is None:
            raise RepositoryError("the waiter is not connected; call connect() first")
        conn = self._conn
        replies: list[Any] = []
        with self._repo._errors:
            try:
                await conn.send_packed_command(conn.pack_commands(commands))
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:  # read in full: the connection stays in step
                        replies.append(exc)
            except BaseException:
                await conn.disconnect(nowait=True)  # replies may be left unread
                if is_cluster(self._repo.client):  # after a failover the next wait goes to
                    await self.close()  # the promoted replica, not the dead primary
                raise
        for reply in replies:
            if isinstance(reply, ResponseError) and not isinstance(reply, NoScriptError):
                if is_cluster(self._repo.client):  # e.g. MOVED: the slot has a new owner
                    await self.close()
                raise self._repo._errors.translate(reply) from reply
        return replies
