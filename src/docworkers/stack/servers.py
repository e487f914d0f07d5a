"""The two servers of the local stack: how to start each, check it, and recognise it.

A server is recognised as the stack's own by an argument only the stack passes: the path of
its config file (valkey) or data folder (Chroma) inside the data folder. Processes without it
(a Redis or Chroma the user runs, another data folder's servers) are never stopped.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from docworkers.errors import DocworkersError, RepositoryConnectionError, VectorStoreError
from docworkers.stack.state import ServerRecord

HEALTH_TIMEOUT = 1.0  # seconds for one health check
STOP_TIMEOUT = 20.0  # seconds a server gets to stop after SIGTERM (valkey writes its AOF)


def free_port(wanted: int = 0) -> int:
    """A loopback port nobody listens on now (the server may still lose a race for it):
    ``wanted`` if it is free, else any."""
    with socket.socket() as sock:
        # As the servers do: a port whose last connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    return True


def arguments(pid: int) -> list[str]:
    """The command line of ``pid`` (empty if gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def resident_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (Linux), None if unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def processes_with(marker: str) -> list[int]:
    """Pids of this user's processes with ``marker`` as one of their arguments."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == os.getuid() and marker in arguments(int(entry.name)):
                    found.append(int(entry.name))
    return found


def stop_process(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; returns once ``pid`` is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while alive(pid):
            _reap(pid)
            time.sleep(0.02)


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child (else it would linger as a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@dataclass(frozen=True, slots=True)
class ServerKind:
    """What differs between the stack's valkey and its Chroma."""

    name: str
    title: str
    start_timeout: float
    error: type[DocworkersError]

    def folder(self, home: Path) -> Path:
        return home / self.name

    def log(self, home: Path) -> Path:
        return home / "logs" / f"{self.name}.log"

    def marker(self, home: Path) -> str:
        return str(home / "redis" / "valkey.conf") if self.name == "redis" \
            else str(home / "chroma")

    def url(self, record: ServerRecord) -> str:
        if self.name == "redis":
            return f"redis://:{record.password}@127.0.0.1:{record.port}/0"
        return f"http://127.0.0.1:{record.port}"

    def healthy(self, record: ServerRecord) -> bool:
        return _redis_answers(record) if self.name == "redis" else _chroma_answers(record)

    def launch(self, home: Path, port: int, password: str = "") -> tuple[int, str]:
        """Start the server detached (it outlives this process); its pid and password (the
        one given, else a new one for valkey)."""
        self.folder(home).mkdir(parents=True, exist_ok=True)
        self.log(home).parent.mkdir(parents=True, exist_ok=True)
        if self.name == "redis":
            password = password or secrets.token_hex(24)
        if self.name == "redis":
            command = [_valkey_binary(), _valkey_config(home, port, password, self.log(home))]
        else:
            command = [str(_chroma_cli()), "run", "--path", self.marker(home),
                       "--host", "127.0.0.1", "--port", str(port)]
        return _spawn_detached(command, log=self.log(home), cwd=home), password


def _spawn_detached(command: list[str], *, log: Path, cwd: Path) -> int:
    """Run ``command`` in the background through a shell that exits at once, so the server is
    nobody's child here (no zombie, no Popen to wait for), in a session of its own (Ctrl-C in
    the terminal spares it); its pid."""
    with log.open("ab") as output:
        shell = subprocess.run(
            ["/bin/sh", "-c", '"$@" </dev/null >&2 & echo $!', "sh", *command],
            stdout=subprocess.PIPE, stderr=output, check=True, start_new_session=True,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"}, cwd=cwd,
            pass_fds=(), close_fds=True)
    return int(shell.stdout.strip())


REDIS = ServerKind("redis", "Redis (valkey)", 30.0, RepositoryConnectionError)
CHROMA = ServerKind("chroma", "Chroma", 120.0, VectorStoreError)
KINDS = {kind.name: kind for kind in (REDIS, CHROMA)}


def _valkey_binary() -> str:
    from docworkers.embedded import server_binary

    return server_binary()


def _chroma_cli() -> Path:
    cli = Path(sys.executable).with_name("chroma")
    if not cli.exists():
        raise VectorStoreError(f"no `chroma` command next to {sys.executable}: install "
                               "docworkers[ingest], or set DOCWORKERS_CHROMA_URL")
    return cli


def _valkey_config(home: Path, port: int, password: str, log: Path) -> str:
    """Write the server's config (0600: it holds the password) and return its path."""
    path = Path(REDIS.marker(home))
    lines = [
        f"# The local stack of {home}, written by docworkers at each start.",
        f"port {port}", "bind 127.0.0.1", "protected-mode yes", f"requirepass {password}",
        f'dir "{REDIS.folder(home)}"', "appendonly yes", "appendfsync everysec", 'save ""',
        "daemonize no", f'logfile "{log}"', "maxmemory-policy noeviction",
        "set-proc-title no",  # keep the config path in the command line: it says "ours"
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return str(path)


def _redis_answers(record: ServerRecord) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(
            ("127.0.0.1", record.port), timeout=HEALTH_TIMEOUT) as sock:
        sock.sendall(f"AUTH {record.password}\r\nPING\r\n".encode())
        reply = b""
        while reply.count(b"\r\n") < 2:
            chunk = sock.recv(64)
            if not chunk:
                break
            reply += chunk
        return reply == b"+OK\r\n+PONG\r\n"
    return False


def _chroma_answers(record: ServerRecord) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", record.port, timeout=HEALTH_TIMEOUT)
    try:
        connection.request("GET", "/api/v2/heartbeat")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
