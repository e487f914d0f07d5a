"""RequestGuard: checks in front of every request, before routing and authentication.

Each refusal has the API's error shape (``{"error": {"code", "message"}}``):

* 400 ``invalid_host``: the ``Host`` header names no host this server answers to (a page on a
  DNS-rebinding domain would otherwise read the API; see :class:`~.security.HostPolicy`);
* 403 ``cross_site_request``: a state-changing request sent by a page of another site (see
  :func:`~.security.cross_site_refusal`); nothing of it is read or stored;
* 413 ``too_large``: a JSON body over :data:`MAX_JSON_BODY`, by its ``Content-Length`` before
  anything is read, or counted while it streams. Uploads are exempt: they stream to disk under
  their own limit (``DOCWORKERS_MAX_UPLOAD_BYTES``).

Byte-level bounds (the size and time of a request's head, the time between body bytes, HTTP
that does not parse) belong to the server: see :mod:`docworkers.api.server`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docworkers.api.errors import error_response
from docworkers.api.security import HostPolicy, cross_site_refusal

log = logging.getLogger("docworkers.api")

MAX_JSON_BODY = 1024 * 1024  # bytes; the largest JSON request (a job payload) is a few KiB


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit // 1024} KiB, the limit of this endpoint"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit; FastAPI hands an
    HTTPException raised while reading a body to the app's handler (a JSON 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit), headers={"Connection": "close"})


class RequestGuard:
    """Pure ASGI middleware (it never buffers a body); lifespan and other scopes pass."""

    def __init__(self, app: ASGIApp, *, hosts: HostPolicy, max_body: int = MAX_JSON_BODY,
                 streaming_paths: Collection[str] = ()) -> None:
        self.app = app
        self.hosts = hosts
        self.max_body = max_body
        self.streaming_paths = frozenset(streaming_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = str(scope["method"])
        client = scope.get("client")
        who = f"{client[0]}" if client else "a client"
        if not self.hosts.allows(headers.get("host")):
            log.warning("refused %s %s from %s: Host %r is not one this server answers to "
                        "(%s)", method, scope["path"][:100], who,
                        (headers.get("host") or "")[:100], self.hosts.describe())
            response = error_response(
                400, "invalid_host",
                "this server does not answer to the host name in the Host header; its "
                "operator can add it to DOCWORKERS_ALLOWED_HOSTS",
                headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        why = cross_site_refusal(method, headers)
        if why is not None:
            log.warning("refused %s %s from %s: %s (Origin %r)", method, scope["path"][:100],
                        who, why, (headers.get("origin") or "")[:100])
            response = error_response(
                403, "cross_site_request",
                f"refused {why}: state-changing requests must come from this server's own "
                "pages or from a non-browser client",
                headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        if scope["path"] in self.streaming_paths:
            await self.app(scope, receive, send)
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            response = error_response(413, "too_large", _too_large(self.max_body),
                                      headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        await self.app(scope, self._bounded(receive), send)

    def _bounded(self, receive: Receive) -> Receive:
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        return bounded
