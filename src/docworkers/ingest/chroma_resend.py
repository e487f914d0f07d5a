"""Chroma requests whose connection ended without a reply are sent again at once (a few times).

Two ways a request meets a connection that ends before any reply, with Chroma up and well:

* a Chroma server that refuses a request body as too large answers 413 and closes without
  reading the rest of the body; the kernel then resets the connection, and the client can meet
  the reset before it reads the 413 (about one such request in four on a loaded machine,
  2026-12-06), or the next request meets it on that kept-alive connection;
* a kept-alive connection the server closed while idle.

Either way the request was not carried out: sent again on a new connection it gets its answer
(the 413, permanent: PayloadTooLargeError), instead of passing for an outage, which is retried
for minutes and counted by the vector store's circuit breaker. A server that is down refuses the
connection instead, which is not resent here. Had a request been carried out after all, its
copy changes nothing: docworkers' writes are upserts and deletes of ids derived from the
document, and its reads are reads.
"""

from __future__ import annotations

import httpx

__all__ = ["DROPPED", "RESENDS", "ResendingTransport"]

# The connection ended without a reply: closed, reset while reading, or reset while sending.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
RESENDS = 4  # at one race in four, five sends all lose it about once in a thousand


class ResendingTransport(httpx.BaseTransport):
    """``inner``, with a request sent again (up to :data:`RESENDS` times) while its connection
    ends without a reply."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(RESENDS):
            try:
                return self.inner.handle_request(request)
            except DROPPED:
                continue
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
