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

:class:`IntakeLane` sends the pushes of the asyncio repository on a connection of its own:
redis-py connects it (AUTH, SELECT, HELLO, TLS), then a :class:`~docworkers.queue.resp_wire.
RespWire` takes its transport over, one write and one reply per push (redis-py's command path
cost more than the push: a task per send for its timeout, a StreamReader, its parser's read
loop; 24 -> 17 µs of producer CPU per enqueue). A reply that does not come within the client's
``socket_timeout`` fails the push and drops the connection; an error reply is raised as redis-py
raises it. On Redis Cluster the pushes go through the client. :class:`SyncIntakeLane` does the
same for the synchronous producer, under a lock, without the pool and retry machinery of each
redis-py call (a third of the time of ``client.rpush`` on a loaded machine). A push lost to a
broken connection is sent again; if the first one had arrived after all, absorb keeps the one
job.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from docworkers.queue.redis.clients import is_cluster
from docworkers.queue.reply_spin import SPIN_LIMIT, ReplySpin, loop_is_idle
from docworkers.queue.resp_wire import RespWire, raise_if_connection_ends, take_over
from docworkers.queue.spec import JobSpec, check_type_and_payload, encode_payload, new_job_id

if TYPE_CHECKING:
    import redis
    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection

    from docworkers.queue.redis.errors import RedisErrors

__all__ = ["IntakeLane", "SyncIntakeLane", "intake_entry", "pack_rpush"]

_string = encode_basestring_ascii  # a str as a JSON string, in C
RETRIES = 3  # a push that meets a broken connection is sent again on a new one, this often
BACKOFF = 0.05  # seconds before the first retry, doubling


def intake_entry(job_type: str, payload: Mapping[str, Any], options: Mapping[str, Any]
                 ) -> tuple[str, str] | JobSpec:
    """``(job id, entry)`` to push on the intake list for an enqueue of ``job_type`` with
    ``payload`` and ``options`` (:class:`JobSpec`'s other fields), or the spec when it needs
    enqueue.lua (its own ``job_id``, a delay or a ``run_at``). With no options no spec is built,
    only its checks of the type and payload are made: that is the common call, and what an idle
    worker's pickup waits on first (the spec's construction and checks of seven unset fields
    took a fifth of the time before the push was written, on a producer woken from idle)."""
    if not options:
        check_type_and_payload(job_type, payload)
        return _entry(job_type, encode_payload(payload), "0", "", '""', '"[]"')
    spec = JobSpec(job_type, payload, **options)
    if spec.job_id is not None or spec.run_at is not None or spec.delay:
        return spec
    retries = "" if spec.max_retries is None else str(spec.max_retries)
    tags = _string(json.dumps(list(spec.tags))) if spec.tags else '"[]"'  # as script_args
    return _entry(spec.type, spec.encoded_payload(), str(spec.priority), retries,
                  _string(spec.user_id or ""), tags)


def _entry(job_type: str, payload: str, priority: str, retries: str, user_id: str,
           tags: str) -> tuple[str, str]:
    """The job id and entry (``user_id`` and ``tags`` already JSON strings). The header is
    written out by hand: the id and numbers need no escaping, and this runs once per enqueue
    (json's list encoder took a third of a producer's time per call)."""
    job_id = new_job_id()
    header = (f'["{job_id}",{_string(job_type)},"{priority}","{retries}",{user_id},{tags},'
              f'"{time.time_ns() // 1_000_000}"]')
    return job_id, f"{header}\n{payload}"


def pack_rpush(key: bytes, entries: Sequence[str]) -> bytes:
    """``RPUSH key entry...`` in RESP, written out (UTF-8, as docworkers' clients encode; an
    entry is ASCII, its JSON escapes the rest): on a producer woken from idle this took three
    quarters of the time of the connection's own packer (redis-py's argument handling, then
    hiredis)."""
    parts = [b"*%d\r\n$5\r\nRPUSH\r\n$%d\r\n%s\r\n" % (len(entries) + 2, len(key), key)]
    for entry in entries:
        data = entry.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class IntakeLane:
    """RPUSHes of intake entries on a connection of this lane's own (see the module doc).

    Used by one caller at a time (the repository's coalescer); a client without a connection
    pool (Redis Cluster) pushes through the client itself.
    """

    def __init__(self, client: aioredis.Redis, errors: RedisErrors,
                 spin: float = SPIN_LIMIT) -> None:
        self._client = client
        self._errors = errors
        self._conn: AbstractConnection | None = None  # held until close(), or until it breaks
        self._wire: RespWire | None = None  # its transport, taken over after the handshake
        self._pool: Any = None if is_cluster(client) else client.connection_pool
        self._timeout: float | None = (
            None if self._pool is None else self._pool.connection_kwargs.get("socket_timeout"))
        self._spin = ReplySpin(spin)

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
        wire, conn = self._wire, self._conn
        if wire is None or conn is None or wire.lost:
            wire, conn = await self._connect()
        try:
            done = wire.exchange(pack_rpush(key.encode(), entries), 1,
                                 self._timeout)
            if loop_is_idle(asyncio.get_running_loop()):
                self._spin.wait(wire.fileno)
            [reply] = await done
            raise_if_connection_ends(reply, conn)
        except TimeoutError as exc:
            await self._drop()
            raise RedisTimeoutError(f"no reply to the intake push within {self._timeout} s"
                                    ) from exc
        except BaseException:
            await self._drop()  # a reply may be left unread
            raise
        if isinstance(reply, ResponseError):  # read in full: the connection stays
            raise reply
        if not isinstance(reply, int):  # RPUSH answers the list's length
            await self._drop()
            raise InvalidResponse(f"Protocol Error: {str(reply)[:80]!r} in reply to RPUSH")

    async def _connect(self) -> tuple[RespWire, AbstractConnection]:
        """A connection from the pool, connected and set up by redis-py (with its own
        timeouts and retries), its transport then taken over by a :class:`RespWire`."""
        await self._drop()  # one that broke
        conn = await self._pool.get_connection()
        self._conn = conn
        self._wire = take_over(conn)
        return self._wire, conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.close()
        if conn is not None:
            await conn.disconnect(nowait=True)
            await self._pool.release(conn)

    async def close(self) -> None:
        await self._drop()


class SyncIntakeLane:
    """:class:`IntakeLane` for synchronous code: thread-safe (one push at a time, under a
    lock), on a connection taken from the client's pool and held until :meth:`close`."""

    def __init__(self, client: redis.Redis, errors: RedisErrors,
                 spin: float = SPIN_LIMIT) -> None:
        self._client = client
        self._errors = errors
        self._spin = ReplySpin(spin)
        self._conn: Any = None  # a redis-py connection (its sync API is partly untyped)
        self._reply_in: Callable[[], bool] = _never  # _conn's can_read(timeout=0), made once
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
            self._reply_in = functools.partial(conn.can_read, timeout=0)
        try:
            conn.send_packed_command([pack_rpush(key.encode(), entries)],
                                     check_health=False)
            self._spin.wait_for(self._reply_in)
            conn.read_response()
        except BaseException:
            self._drop()  # a reply may be left unread
            raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._reply_in = _never
        if conn is not None:
            conn.disconnect()
            self._pool.release(conn)

    def close(self) -> None:
        with self._lock:
            self._drop()


def _never() -> bool:
    return False


def _resend(exc: Exception) -> bool:
    """Whether a push that raised ``exc`` (translated by RedisErrors) may be sent again: the
    connection broke (the push may or may not have arrived; absorb keeps one job either way),
    but not a timeout (the server may be stuck: the caller hears of it at once)."""
    cause = exc.__cause__
    return isinstance(cause, RedisConnectionError | OSError) \
        and not isinstance(cause, RedisTimeoutError | TimeoutError)
