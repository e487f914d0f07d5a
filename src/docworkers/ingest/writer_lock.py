"""One writer process per embedded Chroma directory.

Embedded Chroma keeps SQLite and HNSW files that two writing processes corrupt. A
:class:`WriterLock` is an exclusive, non-blocking ``flock`` on ``<directory>/.docworkers.lock``
held for as long as a repository uses the directory; the file holds the owner's pid so the
second process can say who is in the way.

Inside one process the lock is shared: opening the same directory twice returns the same
:class:`WriterLock` with a reference count (``flock`` would otherwise refuse the process its own
lock), and the repositories on it share :attr:`WriterLock.write_mutex`. The lock file is never
deleted: unlinking it would let two processes lock two different inodes.

``flock`` is advisory and works on local file systems; on NFS use a Chroma server instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import ClassVar

from docworkers.errors import ConfigurationError

__all__ = ["LOCK_FILENAME", "WriterLock"]

LOCK_FILENAME = ".docworkers.lock"


class WriterLock:
    """The exclusive write lock of one directory, reference-counted within this process."""

    _registry: ClassVar[dict[Path, WriterLock]] = {}
    _registry_mutex: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self.write_mutex = threading.RLock()  # serialises writes of every repository on it
        self._fd = fd
        self._refs = 1

    @classmethod
    def acquire(cls, directory: Path) -> WriterLock:
        """Lock ``directory`` (created if missing) or join this process's existing lock.

        Raises ConfigurationError naming ``chroma_path`` if another process holds it.
        """
        directory = directory.resolve()
        with cls._registry_mutex:
            existing = cls._registry.get(directory)
            if existing is not None:
                existing._refs += 1
                return existing
            fd = _open_locked(directory)
            lock = cls(directory, fd)
            cls._registry[directory] = lock
            return lock

    @property
    def held(self) -> bool:
        return self._refs > 0

    def release(self) -> None:
        """Drop one reference; the last one unlocks. Extra calls do nothing."""
        with self._registry_mutex:
            if self._refs <= 0:
                return
            self._refs -= 1
            if self._refs > 0:
                return
            if self._registry.get(self.directory) is self:
                del self._registry[self.directory]
            fd, self._fd = self._fd, -1
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale pid for the next reader
        os.close(fd)  # closing the last descriptor releases the flock

    @classmethod
    def _forget_after_fork(cls) -> None:
        """In a forked child: the parent owns the locks. Close our copies of the descriptors
        (the parent's lock survives; LOCK_UN would release it for the parent too) so the lock
        does not outlive the parent while the child runs, and start with an empty registry."""
        for lock in cls._registry.values():
            with contextlib.suppress(OSError):
                os.close(lock._fd)
            lock._fd, lock._refs = -1, 0
        cls._registry = {}
        cls._registry_mutex = threading.Lock()


def _open_locked(directory: Path) -> int:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILENAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigurationError(
            "chroma_path", f"cannot create the lock file in {directory}: {exc}"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise ConfigurationError(
            "chroma_path",
            f"another process (pid {holder}) is writing {directory}; embedded Chroma allows one "
            "writer process per directory: use a Chroma server (DOCWORKERS_CHROMA_URL) for "
            "multi-process deployments",
        ) from None
    except OSError as exc:
        os.close(fd)
        raise ConfigurationError(
            "chroma_path",
            f"cannot lock {directory / LOCK_FILENAME}: {exc}; the file system may not support "
            "flock (NFS): use a Chroma server (DOCWORKERS_CHROMA_URL)",
        ) from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


os.register_at_fork(after_in_child=WriterLock._forget_after_fork)
