"""Finding documents on disk and storing them where workers read them.

A document is recognised by its extension (:data:`DOCUMENT_EXTENSIONS`); anything else met while
walking a folder is counted as skipped. Hidden files and folders (``.git``, ``.docworkers``)
are not walked at all. Stored copies are named by their SHA-256, never by the user's file name,
so no name can escape the storage folder and the same bytes are stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from docworkers.cli.context import UsageError

DOCUMENT_EXTENSIONS = frozenset({
    ".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt", ".text", ".rst", ".csv",
    ".log", ".doc", ".xls", ".xlsx", ".pptx", ".eml", ".msg",
})


@dataclass(slots=True)
class Discovery:
    """The documents found under some paths, and the files passed over."""

    documents: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoredFile:
    source: Path
    filename: str  # the bare name shown to users and stored on the job
    path: Path  # the content-addressed copy in the storage folder
    size: int
    sha256: str


def is_document(path: Path) -> bool:
    return path.suffix.lower() in DOCUMENT_EXTENSIONS


def discover(paths: Sequence[Path], *, exclude: Iterable[str] = ()) -> Discovery:
    """Documents under ``paths`` (files, or folders walked recursively), in a stable order.

    ``exclude`` holds file-name prefixes to leave out silently (the demo's license notices).
    Raises UsageError for a path that does not exist.
    """
    found = Discovery()
    seen: set[Path] = set()
    prefixes = tuple(exclude)

    def consider(path: Path) -> None:
        resolved = path.resolve()
        if resolved in seen or (prefixes and path.name.startswith(prefixes)):
            return
        seen.add(resolved)
        (found.documents if is_document(path) else found.skipped).append(path)

    for path in paths:
        if path.is_file():
            consider(path)
        elif path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        candidate = Path(folder) / name
                        if candidate.is_file():  # not a broken link, a socket or a fifo
                            consider(candidate)
        elif path.exists():
            raise UsageError(f"{path} is neither a file nor a folder")
        else:
            raise UsageError(f"{path}: no such file or folder")
    return found


def bare_filename(path: Path) -> str:
    """The name stored on the job: no folders, no backslashes, at most 255 characters."""
    name = path.name.replace("\\", "_").strip() or "document"
    if len(name) > 255:
        name = name[: 255 - len(path.suffix)] + path.suffix
    return name


def store(source: Path, storage_dir: Path) -> StoredFile:
    """Copy ``source`` into ``storage_dir`` as ``<sha256><suffix>`` (atomically, once)."""
    storage_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle, temp_name = tempfile.mkstemp(dir=storage_dir, prefix=".incoming-")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out, source.open("rb") as data:
            while block := data.read(1 << 20):
                digest.update(block)
                out.write(block)
                size += len(block)
        suffix = source.suffix.lower() if is_document(source) else ""
        target = storage_dir / f"{digest.hexdigest()}{suffix}"
        os.chmod(temp, 0o644)
        os.replace(temp, target)  # same bytes, same name: replacing is harmless
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return StoredFile(source=source, filename=bare_filename(source), path=target.resolve(),
                      size=size, sha256=digest.hexdigest())
