"""The local stack: one private valkey and one `chroma run` per data folder, shared by every
docworkers process that uses that folder without DOCWORKERS_REDIS_URL / DOCWORKERS_CHROMA_URL.

The first process that needs a server starts it (under the stack lock) and writes it in the
state file; the others read the state file and health-check the server. A server that does not
answer (killed, stopped, its machine rebooted) is stale: the next process stops whatever is left
of it and starts a new one on the same data, the same port and the same password when the port
is free, so that long-running processes (workers, the API) reconnect on their own. Servers
outlive the process that started them; ``docworkers down`` stops them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from docworkers.stack.servers import (
    KINDS,
    ServerKind,
    alive,
    arguments,
    free_port,
    processes_with,
    resident_mb,
    stop_process,
)
from docworkers.stack.state import ServerRecord, StackState, locked

__all__ = ["LocalStack", "ServerStatus"]

START_ATTEMPTS = 3  # a free port can be taken between our check and the server's bind


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What ``docworkers status`` shows of one server."""

    name: str
    title: str
    running: bool
    pid: int | None
    port: int | None
    url: str | None  # without the password
    uptime: float | None  # seconds
    memory_mb: float | None
    data_bytes: int
    data_path: Path
    log_path: Path


class LocalStack:
    """The servers of the data folder ``home``."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home).expanduser().resolve()

    def url(self, name: str) -> str:
        """The URL of server ``name`` ("redis" or "chroma"), started first if needed."""
        kind = KINDS[name]
        return kind.url(self.ensure(kind))

    def up(self) -> dict[str, ServerRecord]:
        """Start every server that is not running; the records of all."""
        return {name: self.ensure(kind) for name, kind in KINDS.items()}

    def ensure(self, kind: ServerKind) -> ServerRecord:
        """The running server of ``kind``: found (state file + health check) or started."""
        record = self._running(StackState.read(self.home), kind)
        if record is not None:
            return record
        with locked(self.home):
            state = StackState.read(self.home)
            record = self._running(state, kind)
            if record is not None:  # another process started it while we waited
                return record
            self._stop_leftovers(state, kind)
            record = self._start(kind, state.servers.get(kind.name))
            state = StackState.read(self.home)  # unchanged under the lock, but be exact
            state.servers[kind.name] = record
            state.write(self.home)
            return record

    def down(self) -> list[ServerRecord]:
        """Stop the stack's servers (only ours); the records of those that were running."""
        with locked(self.home):
            state = StackState.read(self.home)
            stopped = [r for r in state.servers.values() if self._ours(r.pid, KINDS[r.name])]
            for kind in KINDS.values():
                self._stop_leftovers(state, kind)
        # The records stay: the next start takes the same ports and password again.
        return stopped

    def status(self) -> list[ServerStatus]:
        """Each server's state, without starting anything."""
        state = StackState.read(self.home)
        now = time.time()
        shown = []
        for name, kind in KINDS.items():
            record = state.servers.get(name)
            running = record is not None and self._running(state, kind) is not None
            shown.append(ServerStatus(
                name=name, title=kind.title, running=running,
                pid=record.pid if record and running else None,
                port=record.port if record and running else None,
                url=kind.url(record).replace(f":{record.password}@", "")
                if record and running else None,
                uptime=now - record.started_at if record and running else None,
                memory_mb=resident_mb(record.pid) if record and running else None,
                data_bytes=_size(kind.folder(self.home)), data_path=kind.folder(self.home),
                log_path=kind.log(self.home)))
        return shown

    def _running(self, state: StackState, kind: ServerKind) -> ServerRecord | None:
        record = state.servers.get(kind.name)
        if record is None or not self._ours(record.pid, kind) or not kind.healthy(record):
            return None
        return record

    def _ours(self, pid: int, kind: ServerKind) -> bool:
        return alive(pid) and kind.marker(self.home) in arguments(pid)

    def _stop_leftovers(self, state: StackState, kind: ServerKind) -> None:
        """Stop what is left of ``kind``'s stale server: the recorded pid if it is still ours,
        and any process with our marker (a starter killed before it wrote the state file)."""
        pids = set(processes_with(kind.marker(self.home)))
        record = state.servers.get(kind.name)
        if record is not None and self._ours(record.pid, kind):
            pids.add(record.pid)
        for pid in pids:
            stop_process(pid)

    def _start(self, kind: ServerKind, previous: ServerRecord | None) -> ServerRecord:
        problem = ""
        for attempt in range(START_ATTEMPTS):
            again = previous is not None and attempt == 0
            port = free_port(previous.port if previous and again else 0)
            pid, password = kind.launch(self.home, port,
                                        previous.password if previous and again else "")
            record = ServerRecord(kind.name, pid, port, time.time(), os.getpid(), password)
            deadline = time.monotonic() + kind.start_timeout
            while time.monotonic() < deadline and alive(pid):
                if kind.healthy(record):
                    return record
                time.sleep(0.05)
            stop_process(pid)  # up but never answered: give up on it
            problem = _last_line(kind.log(self.home))
        raise kind.error(f"the local {kind.title} server did not start in {self.home}: "
                         f"{problem or 'no output'} (log: {kind.log(self.home)})")


def _size(folder: Path) -> int:
    total = 0
    if folder.is_dir():
        for path in folder.rglob("*"):
            try:
                total += path.stat().st_size if path.is_file() else 0
            except OSError:
                continue
    return total


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line), "")
