"""Serving the API with uvicorn, with bounds on slow, oversized and malformed requests.

uvicorn's HTTP/1.1 protocol (httptools) on its own holds a connection for as long as the client
likes: nothing limits the time to send a request's head or the pauses in its body, the head may
grow without bound, and what it answers to bytes it cannot parse is plain text. A client that
sends its headers and five bytes of a body, or a body shorter than its ``Content-Length``, held
a connection (and an upload's temporary file) until it gave up. :class:`GuardedHttpProtocol`
adds, per connection:

* the request head (request line and headers) must be complete within ``request_timeout``
  seconds of its first byte, at most ``max_head_bytes`` long with ``max_headers`` headers and a
  target of ``max_url_bytes``: else 408, 431 or 414;
* a body must not pause for longer than ``request_timeout`` (pauses the server causes, by not
  reading while the app is busy or before it sends ``100 Continue``, do not count): else 408;
* a connection closed by the client in the middle of a request gets 400, and bytes that are not
  HTTP/1.1 get 400 (uvicorn's answer, in our shape);
* at most ``max_connections`` connections at once: the next one gets 503.

Every refusal is the API's JSON error (``{"error": {"code", "message"}}``) with ``Connection:
close``, then the connection is closed; the app's handler, if one was running, sees the client
disconnect (an upload deletes its temporary file). A connection that sent nothing is closed
without an answer (browsers open spare connections).

Written on uvicorn's httptools protocol, whose parser callbacks are the hooks; the lock pins
uvicorn, and tests/faults/test_request_abuse.py checks each bound against a real server.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from docworkers.api.errors import error_body
from docworkers.errors import ConfigurationError

__all__ = ["GuardedHttpProtocol", "ServerLimits", "server_config"]

log = logging.getLogger("docworkers.api")


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerLimits:
    """Per-connection bounds of :class:`GuardedHttpProtocol` (sizes in bytes)."""

    request_timeout: float = 30.0  # DOCWORKERS_API_REQUEST_TIMEOUT
    max_head_bytes: int = 32 * 1024
    max_url_bytes: int = 8 * 1024
    max_headers: int = 100
    max_connections: int = 1000
    keep_alive: int = 5  # seconds an idle keep-alive connection stays open

    def __post_init__(self) -> None:
        if not 0 < self.request_timeout < float("inf"):
            raise ConfigurationError("request_timeout", "must be a positive number of seconds")
        for name in ("max_head_bytes", "max_url_bytes", "max_headers", "max_connections",
                     "keep_alive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(name, f"must be a whole number >= 1, got {value!r}")


class _Refused(Exception):
    """Raised inside a parser callback; httptools stops parsing and uvicorn calls
    ``send_400_response``, which answers with the refusal stored on the protocol instead."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of :attr:`limits` (see the module doc).
    Use :func:`server_config`, which makes a subclass with the limits set."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusal: tuple[int, str, str] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True  # between requests or reading a head
        self._head_bytes = 0  # bytes received since the current head began
        self._header_count = 0
        self._header_bytes = 0
        self._in_body = False
        self._last_body = 0.0  # loop time of the last body bytes

    # -- connection --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "too_many_connections",
                         "the server has too many open connections; try again shortly")
            return
        self._arm(self.limits.request_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if (self._in_head and self._head_bytes > self.limits.max_head_bytes
                and not self.transport.is_closing()):
            self._refuse(431, "headers_too_large",
                         f"the request head is longer than {self.limits.max_head_bytes} bytes")

    def eof_received(self) -> None:
        # The client closed its side (it can still read). In the middle of a request, say so.
        if self._in_body:
            self._refuse(400, "incomplete_body",
                         "the connection was closed before the request body was complete "
                         "(the body is shorter than its Content-Length)")
        elif self._in_head and self._head_bytes:
            self._refuse(400, "incomplete_request",
                         "the connection was closed in the middle of the request head")

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a parser error, or to a refusal raised in one of our callbacks.
        status, code, message = self._refusal or (
            400, "malformed_request", "the request is not valid HTTP/1.1")
        self._refuse(status, code, message)

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._header_count = self._header_bytes = 0
        if self._timer is None:  # a later request on a kept-alive connection
            self._arm(self.limits.request_timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._raise(414, "uri_too_long", f"the request target is longer than "
                                             f"{self.limits.max_url_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_count > self.limits.max_headers:
            self._raise(431, "headers_too_large",
                        f"the request has more than {self.limits.max_headers} headers")
        if self._header_bytes > self.limits.max_head_bytes:
            # (a head that arrived whole in one read; a longer one is stopped in data_received)
            self._raise(431, "headers_too_large", f"the request head is longer than "
                                                  f"{self.limits.max_head_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()
        # A body may follow; on_message_complete (often at once) says it will not.
        self._in_body = True
        self._last_body = self.loop.time()
        self._arm(self.limits.request_timeout, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._last_body = self.loop.time()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        self._in_head = True
        self._disarm()

    # -- deadlines ---------------------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if not self._head_bytes:  # an idle connection (a browser's spare): just close it
            self.transport.close()
            return
        self._refuse(408, "request_timeout",
                     f"the request head did not arrive within {self.limits.request_timeout:g}s")

    def _body_timed_out(self) -> None:
        self._timer = None
        if not self._in_body:
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self._last_body = now  # we are not reading (the app is busy): not the client's pause
        remaining = self._last_body + self.limits.request_timeout - now
        if remaining > 0:
            self._arm(remaining, self._body_timed_out)
            return
        self._refuse(408, "request_timeout",
                     f"the request body stalled: no bytes for {self.limits.request_timeout:g}s")

    # -- refusing ----------------------------------------------------------------------------

    def _raise(self, status: int, code: str, message: str) -> None:
        self._refusal = (status, code, message)
        raise _Refused(message)

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` with the API's JSON error and close the connection."""
        in_body = self._in_body
        self._disarm()
        self._in_head = self._in_body = False
        if self.transport.is_closing():
            return
        # While a body is read, self.cycle is that request's; while a head is read, it is the
        # previous request's (still answering only if the client pipelines).
        cycle = self.cycle
        answered = False
        if cycle is not None:
            answered = cycle.response_started if in_body else not cycle.response_complete
            if not cycle.response_complete:
                # The app's later sends are dropped and its receive() reports a disconnect.
                cycle.disconnected = True
                cycle.message_event.set()
        client = self.client[0] if self.client else "a client"
        log.warning("refused a request from %s: %s %s", client, status, message)
        if not answered:  # else a status line is out already: closing is all that is left
            body = json.dumps(error_body(code, message), separators=(",", ":")).encode()
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [b"content-type: application/json\r\n",
                     b"content-length: " + str(len(body)).encode() + b"\r\n",
                     b"connection: close\r\n\r\n", body]
            self.transport.write(b"".join(head))
        self.transport.close()


def server_config(app: Any, *, host: str, port: int, limits: ServerLimits,
                  log_level: str = "info") -> uvicorn.Config:
    """A uvicorn configuration that serves ``app`` with :class:`GuardedHttpProtocol`."""
    protocol = type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})
    return uvicorn.Config(app, host=host, port=port, http=protocol, log_config=None,
                          log_level=log_level, timeout_keep_alive=limits.keep_alive)
