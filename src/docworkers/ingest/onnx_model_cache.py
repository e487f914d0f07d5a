"""The model optimised for this machine, kept on disk between starts and shared by processes.

:class:`~docworkers.ingest.onnx_sessions.SessionPerThread` maps the optimised model's weights
from a file. Optimising costs ~0.3 s per start, and a file in the temporary folder would be
memory, not disk, where that folder is a ``tmpfs``; so the result is kept in the user's cache
folder (``$XDG_CACHE_HOME/docworkers/onnx``, else ``~/.cache/docworkers/onnx``), one entry per
model, onnxruntime library and CPU. Every process of the machine maps the same file, so the
pages it reads back (the word table, ~45 MB) are held once, not once per worker.

An entry is written under a hidden name and renamed into place, so a reader never sees half of
one and processes starting at once agree on one copy. Writing an entry removes the model's
others (an older onnxruntime's, or an earlier version of the model file). Where the cache
folder cannot be written, the entry goes to a private temporary folder its caller removes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from docworkers.ingest.heap import trim_heap
from docworkers.ingest.onnx_capi import OrtApi

__all__ = ["GRAPH_FILE", "WEIGHTS_FILE", "OptimisedModel", "default_cache_dir", "optimised_model"]

logger = logging.getLogger(__name__)

GRAPH_FILE = "model.onnx"
WEIGHTS_FILE = "weights.bin"
_ABANDONED_SECONDS = 3600  # a hidden entry this old was left by a process that died writing it


@dataclass(frozen=True, slots=True)
class OptimisedModel:
    """An entry: ``folder`` holds :data:`GRAPH_FILE` and :data:`WEIGHTS_FILE`; ``temporary``
    when it is not in the cache and its user removes it."""

    folder: Path
    temporary: bool

    @property
    def graph(self) -> Path:
        return self.folder / GRAPH_FILE

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS_FILE

    def discard(self) -> None:
        """Removes the entry (a damaged one; a process still mapping its file keeps its pages)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/docworkers/onnx``, else ``~/.cache/docworkers/onnx``."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "docworkers" / "onnx"


def optimised_model(api: OrtApi, model: Path, cache_dir: Path | None = None) -> OptimisedModel:
    """The entry for ``model`` in ``cache_dir`` (default :func:`default_cache_dir`), made now
    if missing, or a temporary one where the cache cannot be written."""
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    entry = folder / _key(api, model)
    if (entry / WEIGHTS_FILE).is_file() and (entry / GRAPH_FILE).is_file():
        return OptimisedModel(entry, temporary=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=folder))
    except OSError as exc:
        logger.info("model cache %s not writable (%s): a temporary copy", folder, exc)
        building = Path(tempfile.mkdtemp(prefix="docworkers-model-"))
        _save(api, model, building)
        return OptimisedModel(building, temporary=True)
    try:
        _save(api, model, building)
        os.rename(building, entry)
    except OSError:
        # Another process put its copy in place first (renaming onto a folder that is not
        # empty fails): use that one.
        shutil.rmtree(building, ignore_errors=True)
        if not (entry / WEIGHTS_FILE).is_file():
            raise
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    _remove_others(folder, keep=entry.name, model=model.stem)
    return OptimisedModel(entry, temporary=False)


def _save(api: OrtApi, model: Path, folder: Path) -> None:
    api.save_optimised(model, folder / GRAPH_FILE, WEIGHTS_FILE)
    trim_heap()  # the optimiser's ~90 MB of unpacked weights, now in the file


def _key(api: OrtApi, model: Path) -> str:
    """What the optimised graph depends on: the model's bytes, the onnxruntime library, and the
    CPU (optimisation at the full level may choose kernels for its instruction set)."""
    with model.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256")
    library = api.library
    digest.update(f"{library.name}\0{library.stat().st_size}\0{platform.machine()}".encode())
    digest.update(_cpu_flags().encode())
    return f"{model.stem}-{digest.hexdigest()[:20]}"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def _remove_others(folder: Path, *, keep: str, model: str) -> None:
    """Removes the entries of ``model`` other than ``keep`` (other models' entries stay)."""
    for other in folder.iterdir():
        name = other.name.removeprefix(".")
        if not name.startswith(f"{model}-") or name.startswith(keep):
            continue
        if other.name.startswith("."):
            try:  # another process's entry in the making, unless it was abandoned
                if time.time() - other.stat().st_mtime < _ABANDONED_SECONDS:
                    continue
            except OSError:
                continue
        shutil.rmtree(other, ignore_errors=True)
