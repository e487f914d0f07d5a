"""A real HTTP server on 127.0.0.1 for the services we cannot run in the tests.

The only fakes this project allows stand in for hosted services (an OpenAI-compatible
embedding or chat API): the clients under test still speak real HTTP over a real socket, and
only the answers are canned. The tests that need such a service share this one server instead
of each writing its own handler, thread and JSON plumbing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body, None when there was none


Answer = Callable[[Request], tuple[int, Any]]
"""Returns (status, payload): a str payload is sent as is, anything else as JSON."""


class LocalHTTPServer:
    """Serves ``answer`` on 127.0.0.1 from a daemon thread until ``close()``, recording every
    request in ``requests`` before answering it. Runs from construction; ``url`` has no path."""

    def __init__(self, answer: Answer) -> None:
        self.requests: list[Request] = []
        self._closed = False
        self._close_lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers),
                                  json.loads(raw) if raw else None)
                server.requests.append(request)
                status, payload = answer(request)
                body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (timeout tests)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"local-http-{self._httpd.server_address[1]}")
        self._thread.start()

    def close(self) -> None:
        """Stops serving and frees the port; later calls do nothing."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
