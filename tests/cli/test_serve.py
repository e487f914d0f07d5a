"""``docworkers serve``: starts the HTTP API of docworkers.api.app and stops cleanly on
SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from docworkers.stack.servers import free_port


def test_serve_answers_http_and_stops_on_sigterm(
        background: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    port = free_port()
    server = background("serve", "serve", "--port", str(port), "--with-workers", "0")
    deadline = time.monotonic() + 40
    while True:
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
    assert response.status_code < 500
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()
