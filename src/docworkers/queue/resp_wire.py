"""Our own protocol on a connection redis-py has set up: the waiter's and the intake lane's.

redis-py connects, authenticates, selects the database, says HELLO and sets up TLS (the waiter
also reads the connection's CLIENT ID, waiter.py); then :func:`take_over` hands the connection's
transport to a :class:`RespWire`. An exchange (the waiter's BLMOVE and reserve script, or the
intake's RPUSH) is one ``transport.write`` of the packed commands and one future, resolved with
every reply once the last is in, in one read or several: the transport reads into the wire's
buffer, a hiredis reader (the parser redis-py itself uses) parses it there. Going through
redis-py's ``send_packed_command`` and ``read_response`` instead (a StreamWriter, a
StreamReader, a coroutine chain and a timeout per reply) sat on an idle worker's pickup,
between the reply's arrival and the job's start, and cost a third of a producer's CPU per
enqueue (24 -> 17 µs, 2026-12-06). Not on Redis Cluster, whose clients have no pool to take a
connection from.

Exchanges are strictly one at a time (each owner awaits one before the next), so any reply that
comes when none is awaited is a protocol error. One timer, re-armed only when it fires before
the exchange in flight is due, bounds each exchange by the deadline it was given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ReadOnlyError

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection

__all__ = ["RespWire", "raise_if_connection_ends", "take_over"]

_BUFFER = 64 * 1024  # bytes per read; a longer reply is read in several
_MORE = object()  # hiredis: no whole reply in yet


class RespWire(asyncio.BufferedProtocol):
    """One exchange at a time on ``transport``.

    ``previous`` is the protocol the transport had (redis-py's StreamReaderProtocol): it hears
    of the connection's end too, so that redis-py's ``disconnect`` of the connection, which
    waits for it, does not wait for ever. ``encoding`` and ``errors`` decode bulk strings as
    the connection's encoder would (None: bytes).
    """

    def __init__(self, transport: asyncio.Transport, previous: asyncio.BaseProtocol,
                 encoding: str | None, errors: str) -> None:
        self._transport = transport
        self._previous = previous
        self._loop = asyncio.get_running_loop()
        options: dict[str, Any] = {"protocolError": InvalidResponse,
                                   "replyError": BaseParser.parse_error, "notEnoughData": _MORE}
        if encoding is not None:
            options["encoding"], options["errors"] = encoding, errors
        self._parser = hiredis.Reader(**options)
        self._done: asyncio.Future[list[Any]] | None = None  # the exchange in flight, if any
        self._replies: list[Any] = []
        self._expected = 0
        self._arrived: Callable[[list[Any]], None] | None = None
        self._deadline = 0.0  # the exchange's, on the loop's clock
        self._timer: asyncio.TimerHandle | None = None
        self._buffer = bytearray(_BUFFER)
        self._view = memoryview(self._buffer)
        self.lost = False  # the connection has ended: take a new one
        sock = transport.get_extra_info("socket")  # asyncio's TransportSocket, or uvloop's
        self.fileno: int = -1 if sock is None else sock.fileno()  # for reply_spin

    def exchange(self, packed: bytes, replies: int, limit: float | None,
                 arrived: Callable[[list[Any]], None] | None = None
                 ) -> asyncio.Future[list[Any]]:
        """Send ``packed`` (``replies`` commands); the future gets their replies, error replies
        as redis-py's exceptions (not raised), or the connection's error, or TimeoutError when
        ``limit`` seconds pass first. ``arrived`` is called with the replies the moment the last
        is in, before the future is resolved (unless it was cancelled): in the transport's read
        callback, one turn of the event loop before the awaiting task resumes. It must not
        raise (if it does, the future gets its exception)."""
        if self.lost:
            raise RedisConnectionError("the connection has closed")
        if self._done is not None:
            raise RuntimeError("one exchange at a time on a RespWire")
        done = self._done = self._loop.create_future()
        self._replies = []
        self._expected = replies
        self._arrived = arrived
        # Never waits: the transport buffers what the socket does not take at once. Nothing
        # else is written, so the deadline below bounds the send as well.
        self._transport.write(packed)
        if limit is not None:
            self._deadline = deadline = self._loop.time() + limit
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = self._loop.call_at(deadline, self._check)
        return done

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        parser = self._parser
        # Copied in: the buffer is free for the next read. (hiredis takes any buffer; its
        # stub says str or bytes.)
        parser.feed(self._buffer, 0, nbytes)  # type: ignore[arg-type]
        try:
            reply = parser.gets()
            while reply is not _MORE:
                done = self._done
                if done is None:
                    raise InvalidResponse("Protocol Error: unexpected data on the "
                                          f"connection: {str(reply)[:80]!r}")
                replies = self._replies
                replies.append(reply)
                if len(replies) == self._expected:
                    self._done = None
                    arrived, self._arrived = self._arrived, None
                    if done.done():  # cancelled: the owner drops this connection
                        pass
                    elif arrived is None:
                        done.set_result(replies)
                    else:
                        try:
                            arrived(replies)
                        except Exception as exc:
                            done.set_exception(exc)
                        else:
                            done.set_result(replies)
                reply = parser.gets()
        except InvalidResponse as exc:
            self._fail(exc)

    def _fail(self, error: Exception) -> None:
        done, self._done = self._done, None
        if done is not None and not done.done():
            done.set_exception(error)
        self.close()

    def _check(self) -> None:
        self._timer = None
        done = self._done
        if done is None or done.done():
            return  # idle: the next exchange arms the timer
        if self._loop.time() >= self._deadline:
            self._done = None
            done.set_exception(TimeoutError())
        else:  # armed for an earlier exchange: wait for this one's deadline
            self._timer = self._loop.call_at(self._deadline, self._check)

    def eof_received(self) -> None:
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        done, self._done = self._done, None
        if done is not None and not done.done():
            error = RedisConnectionError(
                "Connection closed by server." if exc is None else f"Error while reading: {exc}")
            error.__cause__ = exc
            done.set_exception(error)
        self._previous.connection_lost(exc)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.abort()  # connection_lost follows (once, however often this is called)


def take_over(conn: AbstractConnection) -> RespWire:
    """Move connected ``conn``'s transport to a new :class:`RespWire`.

    Private to redis-py 7.1.1 (requirements.lock): a connected asyncio connection holds the
    StreamReader and StreamWriter of ``asyncio.open_connection`` as ``_reader`` and
    ``_writer``; the handshake's replies have all been read from them. Its ``disconnect()``
    still closes the transport (and waits for the StreamReaderProtocol, told by the wire).
    """
    reader, writer = conn._reader, conn._writer  # redis-py 7.1.1, see above
    if reader is None or writer is None or reader.at_eof() or writer.transport.is_closing():
        raise RedisConnectionError("the connection closed before it was taken over")
    if len(getattr(reader, "_buffer", b"")):  # StreamReader's; empty after the handshake
        raise InvalidResponse("Protocol Error: unread data on the connection taken over")
    # asyncio's own socket transport, or uvloop's, which is not an asyncio.Transport subclass
    # but offers the same methods, set_protocol and buffered protocols included.
    transport = cast("asyncio.Transport", writer.transport)
    encoder = conn.encoder
    wire = RespWire(transport, transport.get_protocol(),
                    encoder.encoding if encoder.decode_responses else None,
                    encoder.encoding_errors)
    transport.set_protocol(wire)
    if not transport.is_reading():
        transport.resume_reading()
    return wire


def raise_if_connection_ends(reply: Any, conn: AbstractConnection) -> None:
    """Raise for a reply after which redis-py would end ``conn``: an error reply that is a
    ConnectionError (LOADING, say) as its ``read_response`` does, and READONLY from a sentinel
    master as its sentinel connection does (the master was demoted; a new connection asks the
    sentinels for the new one). The caller then drops the connection."""
    if isinstance(reply, RedisConnectionError):
        raise reply
    if isinstance(reply, list) and reply and isinstance(reply[0], RedisConnectionError):
        raise reply[0]
    if isinstance(reply, ReadOnlyError) and isinstance(conn, SentinelManagedConnection) \
            and conn.connection_pool.is_master:
        raise RedisConnectionError("The previous master is now a replica") from reply
