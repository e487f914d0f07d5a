"""The asyncio intake lane's own protocol, on a connection redis-py has set up.

redis-py connects, authenticates, selects the database, says HELLO and sets up TLS; then
:func:`take_over` hands the connection's transport to an :class:`IntakeWire`. A push is one
``transport.write`` of the packed RPUSH and one future, resolved when the reply's line is in
(in one read or several): ``:N`` (the list's length) or ``-ERROR ...`` (raised as redis-py
raises it). Going through redis-py's ``send_packed_command`` and ``read_response`` instead (a
StreamWriter and its drain, a StreamReader, the parser's read loop, a timeout context per read)
cost 7 of the 24 µs of producer CPU per enqueue (thread_time, 2026-12-06, Python 3.11).

Pushes are strictly one at a time (the lane's coalescer sends the next only after this one's
reply), so at most one reply is awaited and anything else the server sends is a protocol error.
One timer, armed by the first push and re-armed only while replies are in flight, bounds every
reply by the lane's timeout (a timer per push cost about 6 µs).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection

__all__ = ["IntakeWire", "take_over"]

_BUFFER = 64 * 1024  # bytes: a reply to RPUSH (a number, or an error's line) is far shorter


class IntakeWire(asyncio.BufferedProtocol):
    """One RPUSH at a time on ``transport``; ``timeout`` (seconds, or None) bounds each reply.

    ``previous`` is the protocol the transport had (redis-py's StreamReaderProtocol): it hears
    of the connection's end too, so that redis-py's ``disconnect`` of the connection, which
    waits for it, does not wait for ever.

    A buffered protocol: the transport reads into this wire's buffer (``recv_into``). For a
    plain protocol it reads with ``recv(256 KiB)``, a new buffer that large per read, which
    glibc may map and unmap every time: a bare asyncio client sending RPUSHes one at a time
    took 21 µs of CPU per push so, 7.6 µs with a buffered protocol (Python 3.11, 2026-12-06).
    Whether a process pays it depends on its allocator's history (the repository's producer
    happened not to), so the wire never asks for it.
    """

    def __init__(self, transport: asyncio.Transport, previous: asyncio.BaseProtocol,
                 timeout: float | None) -> None:
        self._transport = transport
        self._previous = previous
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._reply: asyncio.Future[int] | None = None  # the push in flight, if any
        self._deadline = 0.0  # its reply's, on the loop's clock
        self._timer: asyncio.TimerHandle | None = None
        self._buffer = bytearray(_BUFFER)
        self._view = memoryview(self._buffer)
        self._filled = 0  # bytes of a reply read so far (one that came in pieces)
        self.lost = False  # the connection has ended: take a new one

    def push(self, packed: bytes) -> asyncio.Future[int]:
        """Send one packed RPUSH; the future gets the list's length, or the error."""
        if self.lost:
            raise RedisConnectionError("the intake connection has closed")
        reply = self._reply = self._loop.create_future()
        # Never waits: the transport buffers what the socket does not take at once. Nothing
        # else is written, and the reply cannot come before the whole command is in, so the
        # deadline below bounds the send as well.
        self._transport.write(packed)
        if self._timeout is not None:
            self._deadline = self._loop.time() + self._timeout
            if self._timer is None:
                self._timer = self._loop.call_at(self._deadline, self._check)
        return reply

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        filled = self._filled + nbytes
        data = self._buffer
        end = data.find(b"\r\n", 0, filled)
        if end < 0:
            if filled == _BUFFER:
                self._fail(InvalidResponse("Protocol Error: no line end in the intake reply"))
            else:
                self._filled = filled
            return
        self._filled = 0
        reply, self._reply = self._reply, None
        if reply is None or end + 2 != filled:
            self._fail(InvalidResponse("Protocol Error: unexpected data on the intake "
                                       f"connection: {bytes(data[:min(filled, 80)])!r}"))
            return
        if reply.done():  # cancelled: the lane drops this connection
            return
        kind = data[0]
        if kind == 58 and data[1:end].isdigit():  # ":", an integer (a length: not negative)
            reply.set_result(int(data[1:end]))
        elif kind == 45:  # "-", an error, as redis-py raises it (ReadOnlyError, NOSCRIPT...)
            error = BaseParser.parse_error(  # type: ignore[no-untyped-call]  # redis-py
                data[1:end].decode(errors="replace"))
            reply.set_exception(error)
        else:
            self._fail(InvalidResponse(f"Protocol Error: {bytes(data[:min(end, 80)])!r}"),
                       reply)

    def _fail(self, error: Exception, reply: asyncio.Future[int] | None = None) -> None:
        reply = reply or self._reply
        self._reply = None
        if reply is not None and not reply.done():
            reply.set_exception(error)
        self.close()

    def _check(self) -> None:
        self._timer = None
        reply = self._reply
        if reply is None or reply.done():
            return  # idle: the next push arms the timer
        if self._loop.time() >= self._deadline:
            self._reply = None
            reply.set_exception(TimeoutError())
        else:  # armed for an earlier push: wait for this one's deadline
            self._timer = self._loop.call_at(self._deadline, self._check)

    def eof_received(self) -> None:
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            error = RedisConnectionError(
                "Connection closed by server." if exc is None else f"Error while reading: {exc}")
            error.__cause__ = exc
            reply.set_exception(error)
        self._previous.connection_lost(exc)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.abort()  # connection_lost follows (once, however often this is called)


def take_over(conn: AbstractConnection, timeout: float | None) -> IntakeWire:
    """Move connected ``conn``'s transport to a new :class:`IntakeWire`.

    Private to redis-py 7.1.1 (requirements.lock): a connected asyncio connection holds the
    StreamReader and StreamWriter of ``asyncio.open_connection`` as ``_reader`` and
    ``_writer``; the handshake's replies have all been read from them. Its ``disconnect()``
    still closes the transport (and waits for the StreamReaderProtocol, told by the wire).
    """
    reader, writer = conn._reader, conn._writer  # redis-py 7.1.1, see above
    if reader is None or writer is None or reader.at_eof() or writer.transport.is_closing():
        raise RedisConnectionError("the intake connection closed before its first push")
    # asyncio's own socket transport, or uvloop's (uvicorn runs the API on uvloop), which is
    # not an asyncio.Transport subclass but offers the same methods, set_protocol included.
    transport = cast("asyncio.Transport", writer.transport)
    wire = IntakeWire(transport, transport.get_protocol(), timeout)
    transport.set_protocol(wire)
    if not transport.is_reading():
        transport.resume_reading()
    return wire
