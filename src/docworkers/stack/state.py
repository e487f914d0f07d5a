"""The local stack's state file: which servers run for a data folder, on which ports.

``<home>/stack.json`` (mode 0600: it holds the Redis password) is read without a lock by every
command (a fast path: read, health-check, connect) and written only under ``<home>/stack.lock``,
an exclusive ``flock`` held while servers are started or stopped. The kernel releases the lock
when its holder dies, so a process killed mid-start never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from docworkers.errors import ConfigurationError

STATE_FILENAME = "stack.json"
LOCK_FILENAME = "stack.lock"
LOCK_TIMEOUT = 180.0  # seconds to wait for another process to finish starting the servers


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """One running server of the stack, as its starter wrote it down."""

    name: str  # "redis" or "chroma"
    pid: int
    port: int
    started_at: float  # epoch seconds
    started_by: int  # pid of the docworkers process that started it
    password: str = ""


@dataclass(slots=True)
class StackState:
    """Every server record of one data folder, by name."""

    servers: dict[str, ServerRecord] = field(default_factory=dict)

    @classmethod
    def read(cls, home: Path) -> StackState:
        """The state in ``home`` (empty if missing or unreadable: then servers are checked
        for and replaced as stale)."""
        try:
            data = json.loads((home / STATE_FILENAME).read_text())
            servers = {name: ServerRecord(**record)
                       for name, record in data.get("servers", {}).items()}
        except (OSError, ValueError, TypeError):
            return cls()
        return cls(servers)

    def write(self, home: Path) -> None:
        """Replace the state file atomically (a reader sees the old or the new one)."""
        home.mkdir(parents=True, exist_ok=True)
        target = home / STATE_FILENAME
        temporary = home / f".{STATE_FILENAME}.{os.getpid()}"
        data = {"version": 1, "servers": {n: asdict(r) for n, r in self.servers.items()}}
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(temporary, target)


@contextlib.contextmanager
def locked(home: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the stack lock of ``home`` (waiting up to ``timeout`` for another holder)."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(home / LOCK_FILENAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigurationError("home", f"cannot use the data folder {home}: "
                                 f"{exc.strerror or exc}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigurationError(
                        "home", f"another process has held {home / LOCK_FILENAME} for over "
                        f"{timeout:.0f}s while starting or stopping the local servers") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the flock
