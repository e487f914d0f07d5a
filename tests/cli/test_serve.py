"""``docworkers serve``: starts the HTTP API of docworkers.api.app and stops cleanly on
SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_http_and_stops_on_sigterm(process_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "docworkers.cli", "serve", "--port", str(port),
         "--with-workers", "0"], env=process_env, cwd=tmp_path, stdout=log,
        stderr=subprocess.STDOUT)
    try:
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
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
