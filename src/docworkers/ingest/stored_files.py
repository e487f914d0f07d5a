"""Files for bulk imports: find documents, store them by content, unpack zip archives safely.

Every file a bulk import enqueues is first copied to the storage folder as ``<sha256><suffix>``
(as the CLI and the HTTP API store uploads): the stored bytes never change under a document, so
``vector_reindex`` can re-read them, and no name taken from a folder or an archive is ever part
of a path we write. Zip archives are read entry by entry with hard caps on the entry count and on
the bytes actually decompressed (header sizes are not trusted), so a zip bomb stops at the cap.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import unquote, urlparse

from docworkers.errors import ConfigurationError, InvalidPayloadError
from docworkers.ingest.parsing.detect import DOCUMENT_EXTENSIONS
from docworkers.ingest.payload import UploadJobPayload

__all__ = [
    "DOCUMENT_EXTENSIONS",
    "Collected",
    "ImportLimits",
    "Skipped",
    "StoredFile",
    "collect_archive",
    "collect_files",
    "collect_folder",
    "local_path",
    "stored_file_path",
]

_BLOCK = 1 << 20
_MAX_NAME = 255


def stored_file_path(payload: UploadJobPayload) -> str:
    """The absolute path of an upload's stored file, as kept on its document record
    (``DocumentRecord.file_path``) so that ``vector_reindex`` can read the file again."""
    return str(payload.path.expanduser().resolve())


@dataclass(frozen=True, kw_only=True, slots=True)
class ImportLimits:
    """Caps of one bulk import. Bytes are counted as they are read, never taken from headers."""

    max_files: int = 10_000
    max_file_bytes: int = 100 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_files", "max_file_bytes", "max_total_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(name, f"must be an integer >= 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class StoredFile:
    filename: str  # the bare name shown to users and put on the upload job
    path: Path  # the content-addressed copy in the storage folder
    size: int


@dataclass(frozen=True, slots=True)
class Skipped:
    name: str  # as the source named it (a path, a URI or an archive entry)
    reason: str


@dataclass(slots=True)
class Collected:
    """The documents of a bulk import, in a stable order, and what was passed over."""

    files: list[StoredFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    total_bytes: int = 0


def bare_filename(name: str) -> str:
    """The last component of ``name``, printable, at most 255 characters ("document" if none)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if base in ("", ".", ".."):
        return "document"
    if len(base) > _MAX_NAME:
        suffix = PurePosixPath(base).suffix[:16]
        base = base[: _MAX_NAME - len(suffix)] + suffix
    return base


def _is_document(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in DOCUMENT_EXTENSIONS


class _Store:
    """Copies streams into ``storage_dir`` as ``<sha256><suffix>``, counting bytes."""

    def __init__(self, storage_dir: Path, limits: ImportLimits, found: Collected) -> None:
        self.dir = storage_dir
        self.limits = limits
        self.found = found
        storage_dir.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, source: IO[bytes]) -> None:
        """Store one document, or record why it was skipped (too large, unreadable)."""
        if len(self.found.files) >= self.limits.max_files:
            raise InvalidPayloadError(
                f"source: more than max_files={self.limits.max_files} documents; split the "
                "import into smaller ones"
            )
        digest = hashlib.sha256()
        size = 0
        handle, temp_name = tempfile.mkstemp(dir=self.dir, prefix=".incoming-")
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out:
                while block := source.read(_BLOCK):
                    size += len(block)
                    if size > self.limits.max_file_bytes:
                        self.found.skipped.append(Skipped(
                            name, f"larger than max_file_bytes={self.limits.max_file_bytes}"))
                        return
                    if self.found.total_bytes + size > self.limits.max_total_bytes:
                        raise InvalidPayloadError(
                            f"source: the documents add up to more than max_total_bytes="
                            f"{self.limits.max_total_bytes} (at {name!r}); split the import, "
                            "or check the archive is not a zip bomb"
                        )
                    digest.update(block)
                    out.write(block)
            target = self.dir / f"{digest.hexdigest()}{PurePosixPath(name).suffix.lower()}"
            os.chmod(temp, 0o644)
            os.replace(temp, target)  # same bytes, same name: replacing is harmless
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self.found.total_bytes += size
        self.found.files.append(StoredFile(bare_filename(name), target.resolve(), size))


def collect_files(sources: list[str], storage_dir: Path, limits: ImportLimits) -> Collected:
    """Store the listed files (paths or ``file://`` URIs), skipping what cannot be imported."""
    found = Collected()
    store = _Store(storage_dir, limits, found)
    for entry in sources:
        path = local_path(entry)
        if path is None:
            found.skipped.append(Skipped(entry, "unsupported URI: use a local path or file://"))
        elif not path.is_file():
            found.skipped.append(Skipped(entry, "not a regular file" if path.exists()
                                         else "no such file"))
        elif not _is_document(path.name):
            found.skipped.append(Skipped(entry, "not a supported document type"))
        else:
            _store_path(store, entry, path)
    return found


def collect_folder(folder: Path, storage_dir: Path, limits: ImportLimits) -> Collected:
    """Store the documents under ``folder`` (walked recursively, hidden entries and symbolic
    links to folders left out), in sorted order so that a rerun numbers them the same."""
    found = Collected()
    store = _Store(storage_dir, limits, found)
    for path in _walk(folder):
        name = str(path.relative_to(folder))
        if _is_document(path.name):
            _store_path(store, name, path)
        else:
            found.skipped.append(Skipped(name, "not a supported document type"))
    return found


def collect_archive(archive: Path, storage_dir: Path, limits: ImportLimits) -> Collected:
    """Unpack the documents of a zip archive into the storage folder, entry by entry.

    Entries are taken in name order. Unsafe entries are skipped with a reason, never written:
    absolute paths, ``..``, symbolic links, encrypted or corrupt entries. More entries than
    ``max_files`` or more decompressed bytes than ``max_total_bytes`` fail the import.
    """
    found = Collected()
    store = _Store(storage_dir, limits, found)
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = [info for info in zf.infolist() if not info.is_dir()]
            if len(entries) > limits.max_files:
                raise InvalidPayloadError(
                    f"source: {archive.name} has {len(entries)} entries, more than max_files="
                    f"{limits.max_files}"
                )
            for info in sorted(entries, key=lambda i: i.filename):
                reason = _unsafe(info)
                if reason == "hidden":
                    continue
                if reason:
                    found.skipped.append(Skipped(info.filename, reason))
                elif not _is_document(info.filename):
                    found.skipped.append(Skipped(info.filename, "not a supported document type"))
                elif info.file_size > limits.max_file_bytes:
                    found.skipped.append(Skipped(
                        info.filename, f"larger than max_file_bytes={limits.max_file_bytes}"))
                else:
                    try:
                        with zf.open(info) as entry:
                            store.add(info.filename, entry)
                    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                        found.skipped.append(Skipped(info.filename, f"corrupt entry: {exc}"))
    except (zipfile.BadZipFile, zlib.error) as exc:
        raise InvalidPayloadError(f"source: {archive.name} is not a readable zip archive: {exc}"
                                  ) from exc
    return found


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and ":" in parts[0]) or ".." in parts:
        return "unsafe path (absolute or with '..'): not extracted"
    if any(part.startswith(".") for part in parts) or (parts and parts[0] == "__MACOSX"):
        return "hidden"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link: not extracted"
    if info.flag_bits & 0x1:
        return "encrypted entry: not extracted"
    return None


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):  # never follows links to folders
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            candidate = Path(root) / name
            if not name.startswith(".") and candidate.is_file():
                yield candidate


def _store_path(store: _Store, name: str, path: Path) -> None:
    try:
        handle = path.open("rb")
    except OSError as exc:
        store.found.skipped.append(Skipped(name, f"unreadable: {exc.strerror or exc}"))
        return
    with handle:  # a failure to write the copy is not the file's fault: it propagates
        store.add(name, handle)


def local_path(entry: str) -> Path | None:
    """The local path of a path or ``file://`` URI; None for any other URI."""
    if entry.startswith("file:"):
        return Path(unquote(urlparse(entry).path))
    if "://" in entry:
        return None
    return Path(entry).expanduser()
