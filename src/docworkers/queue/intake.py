"""The intake: a ready job with a generated id is enqueued in ONE Redis command.

enqueue.lua runs about eight commands per job (the time, an arrival number, an existence check,
the hash, two sorted sets, the wake-up list). A job that needs none of its checks (no ``job_id``
of the caller's, so no idempotency to keep; no delay; not pending) is instead packed here and
pushed with ``RPUSH <queue>:intake``: a generated id cannot collide, and the push itself wakes
an idle worker, which blocks on that list (waiter.py). The first script that reads or changes
the queue afterwards (a reservation, an enqueue, cancel, delete...) absorbs the list into job
hashes and the ready set, in arrival order, before anything else (``absorb`` in
``lua/_lib.lua``, which also documents the entry format); readers in Python run
``absorb.lua`` first. So priority and FIFO hold exactly as if enqueue.lua had run at the push.

:class:`IntakeLane` sends the pushes of the asyncio repository on a connection of its own, in
one write and one read per push: redis-py's per-command timeout runs every send as a task of
its own (``asyncio.wait_for``), which costs more than the push. :class:`SyncIntakeLane` does the
same for the synchronous producer, under a lock, without the pool and retry machinery of each
redis-py call (a third of the time of ``client.rpush`` on a loaded machine). A push lost to a
broken connection is sent again; if the first one had arrived after all, absorb keeps the one
job.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from docworkers.queue.redis.clients import is_cluster
from docworkers.queue.spec import new_job_id

if TYPE_CHECKING:
    import redis
    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection

    from docworkers.queue.redis.errors import RedisErrors
    from docworkers.queue.spec import JobSpec

__all__ = ["IntakeLane", "SyncIntakeLane", "intake_entry"]

_string = encode_basestring_ascii  # a str as a JSON string, in C
RETRIES = 3  # a push that meets a broken connection is sent again on a new one, this often
BACKOFF = 0.05  # seconds before the first retry, doubling
_SENT_AT_ONCE = 16 * 1024  # bytes: well below asyncio's write buffer high-water mark (64 KiB)


def intake_entry(spec: JobSpec) -> tuple[str, str] | None:
    """``(job id, entry)`` for the intake list, or None when ``spec`` needs enqueue.lua (its
    own ``job_id``, a delay or a ``run_at``). The header is written out by hand: the id and
    numbers need no escaping, and this runs once per enqueue (json's list encoder took a third
    of a producer's time per call)."""
    if spec.job_id is not None or spec.run_at is not None or spec.delay:
        return None
    job_id = new_job_id()
    retries = "" if spec.max_retries is None else str(spec.max_retries)
    tags = _string(json.dumps(list(spec.tags))) if spec.tags else '"[]"'  # as script_args
    header = (f'["{job_id}",{_string(spec.type)},"{spec.priority}","{retries}",'
              f'{_string(spec.user_id or "")},{tags},"{time.time_ns() // 1_000_000}"]')
    return job_id, f"{header}\n{spec.encoded_payload()}"


class IntakeLane:
    """RPUSHes of intake entries on a connection of this lane's own (see the module doc).

    Used by one caller at a time (the repository's coalescer); a client without a connection
    pool (Redis Cluster) pushes through the client itself.
    """

    def __init__(self, client: aioredis.Redis, errors: RedisErrors) -> None:
        self._client = client
        self._errors = errors
        self._conn: AbstractConnection | None = None
        self._pool: Any = None if is_cluster(client) else client.connection_pool
        self._timeout: float | None = (
            None if self._pool is None else self._pool.connection_kwargs.get("socket_timeout"))
        self._reply = _ReplyDeadline()

    async def push(self, key: str, entries: Sequence[str]) -> None:
        if self._pool is None:  # Redis Cluster
            with self._errors:
                await cast("Any", self._client.rpush(key, *entries))
            return
        pause = BACKOFF
        for attempt in range(RETRIES + 1):
            try:
                with self._errors:
                    await self._push(key, entries)
                return
            except Exception as exc:
                if attempt == RETRIES or not _resend(exc):
                    raise
            await asyncio.sleep(pause)
            pause *= 2

    async def _push(self, key: str, entries: Sequence[str]) -> None:
        conn = self._conn
        if conn is None:
            # Held until close() (the pool closes it with the client otherwise), without its
            # socket timeout: the timeout below bounds the whole push instead, with no task
            # per command.
            conn = await self._pool.get_connection()
            conn.socket_timeout = None
            self._conn = conn
        packed = conn.pack_command("RPUSH", key, *entries)
        try:
            if conn.is_connected and sum(map(len, packed)) <= _SENT_AT_ONCE:
                # The transport takes a command this small without waiting: drain() waits
                # only above its high-water mark, and the command before this one has been
                # answered, so it was sent in full. Only the reply needs the time bound, armed
                # after the send: a producer's job reaches Redis a few microseconds sooner.
                await conn.send_packed_command(packed, check_health=False)
                if self._timeout is None:
                    await conn.read_response()
                else:
                    await self._reply.within(conn.read_response(), self._timeout)
            else:  # connecting, or a large push: bound the whole exchange
                async with asyncio.timeout(self._timeout):
                    await conn.send_packed_command(packed, check_health=False)
                    await conn.read_response()
        except TimeoutError as exc:
            await self._drop()
            raise RedisTimeoutError(f"no reply to the intake push within {self._timeout} s"
                                    ) from exc
        except BaseException:
            await self._drop()  # a reply may be left unread
            raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect(nowait=True)
            conn.socket_timeout = self._timeout
            await self._pool.release(conn)

    async def close(self) -> None:
        self._reply.close()
        await self._drop()


class _ReplyDeadline:
    """Bounds one awaited reply at a time, like ``asyncio.timeout``, without a timer per await.

    ``asyncio.timeout`` schedules and cancels a loop timer for every push (about 6 µs, an
    eighth of an asyncio producer's CPU per enqueue). Here one timer stays armed while pushes
    come: when it fires it cancels the awaiting task if that reply is overdue, re-arms itself
    for the reply in flight otherwise, and is not re-armed when nothing is in flight (the next
    reply arms it). A reply still times out at its own deadline.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None  # awaiting a reply, if any
        self._deadline = 0.0  # that reply's, on the loop's clock
        self._cancelling = 0  # the task's cancel requests before this reply
        self._expired = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def within(self, reply: Any, timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task, self._deadline = task, loop.time() + timeout
        self._cancelling, self._expired = task.cancelling(), False
        if self._timer is None or self._loop is not loop:
            self._loop, self._timer = loop, loop.call_at(self._deadline, self._check)
        try:
            result = await reply
        except asyncio.CancelledError:
            if self._expired and task.uncancel() <= self._cancelling:
                raise TimeoutError from None
            raise
        finally:
            self._task = None
        if self._expired:  # the reply came as the deadline passed: as asyncio.timeout does
            task.uncancel()
        return result

    def _check(self) -> None:
        self._timer = None
        task, loop = self._task, self._loop
        if task is None or loop is None:
            return  # idle: the next reply arms the timer
        if loop.time() >= self._deadline:
            self._expired = True
            task.cancel()
        else:
            self._timer = loop.call_at(self._deadline, self._check)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None


class SyncIntakeLane:
    """:class:`IntakeLane` for synchronous code: thread-safe (one push at a time, under a
    lock), on a connection taken from the client's pool and held until :meth:`close`."""

    def __init__(self, client: redis.Redis, errors: RedisErrors) -> None:
        self._client = client
        self._errors = errors
        self._conn: Any = None  # a redis-py connection (its sync API is partly untyped)
        self._pool: Any = None if is_cluster(client) else client.connection_pool
        self._lock = threading.Lock()

    def push(self, key: str, entries: Sequence[str]) -> None:
        if self._pool is None:  # Redis Cluster
            with self._errors:
                self._client.rpush(key, *entries)
            return
        pause = BACKOFF
        for attempt in range(RETRIES + 1):
            try:
                with self._errors, self._lock:
                    self._push(key, entries)
                return
            except Exception as exc:
                if attempt == RETRIES or not _resend(exc):
                    raise
            time.sleep(pause)
            pause *= 2

    def _push(self, key: str, entries: Sequence[str]) -> None:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._pool.get_connection()
        try:
            conn.send_packed_command(conn.pack_command("RPUSH", key, *entries),
                                     check_health=False)
            conn.read_response()
        except BaseException:
            self._drop()  # a reply may be left unread
            raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()
            self._pool.release(conn)

    def close(self) -> None:
        with self._lock:
            self._drop()


def _resend(exc: Exception) -> bool:
    """Whether a push that raised ``exc`` (translated by RedisErrors) may be sent again: the
    connection broke (the push may or may not have arrived; absorb keeps one job either way),
    but not a timeout (the server may be stuck: the caller hears of it at once)."""
    cause = exc.__cause__
    return isinstance(cause, RedisConnectionError | OSError) \
        and not isinstance(cause, RedisTimeoutError | TimeoutError)
