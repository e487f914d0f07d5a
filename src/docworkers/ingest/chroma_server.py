"""Run a real Chroma server (`chroma run`) as a child process: for multi-process deployments
on one machine, and for tests and benchmarks that take the server away and bring it back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from docworkers.errors import VectorStoreError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChromaServer:
    """``start()`` returns the URL; ``stop()`` ends it; the data folder survives a restart.

    ``max_payload_bytes``: the largest request body the server accepts (larger ones get 413
    "Payload too large"; Chroma's default is 40 MB), given in a config file.
    """

    def __init__(self, path: Path, *, port: int | None = None,
                 max_payload_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.port = port or _free_port()
        self.max_payload_bytes = max_payload_bytes
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> str:
        cli = Path(sys.executable).with_name("chroma")
        if not cli.exists():
            raise VectorStoreError(
                f"no `chroma` command next to {sys.executable}; install chromadb"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        log = (self.path / "server.log").open("ab")
        arguments = ["--path", str(self.path / "db"), "--host", "127.0.0.1",
                     "--port", str(self.port)]
        if self.max_payload_bytes is not None:
            config = self.path / "config.yaml"
            config.write_text(
                f'persist_path: "{self.path / "db"}"\nlisten_address: "127.0.0.1"\n'
                f"port: {self.port}\nmax_payload_size_bytes: {self.max_payload_bytes}\n")
            arguments = [str(config)]
        self.process = subprocess.Popen(
            [str(cli), "run", *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise VectorStoreError(
            f"chroma run did not start on {self.url}; see {self.path / 'server.log'}"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> ChromaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
