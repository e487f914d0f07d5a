"""chromadb without the ``overrides`` package's import-time checks.

chromadb marks ~190 methods with ``overrides.override``. As each class is built, that decorator
disassembles the code of the module defining it to find the class's bases, then compares the
method's signature with the base's: a check for chromadb's own developers, which costs ~0.12 s
of every process that opens Chroma, a quarter of importing chromadb (benchmarks/RESULTS.md,
2026-12-07). :func:`install` makes the decorator only mark the method, as it does when the
check passes, for every import of ``overrides`` after it. docworkers itself does not use the
package; a process that imported it before ``docworkers.ingest`` keeps the checks.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["install", "mark_override"]

_PACKAGE = "overrides"


def mark_override(method: Any = None, **_checks: bool) -> Any:
    """``overrides.override`` without its checks: marks ``method`` as an override (what
    ``EnforceOverrides`` looks for); ``@override(check_signature=...)`` works too."""
    if method is None:
        return mark_override
    method.__override__ = True
    return method


class _MarkingLoader(importlib.abc.Loader):
    """Loads the package as its own loader does, then swaps its two decorators."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        for name in ("override", "overrides"):
            setattr(module, name, mark_override)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _PACKAGE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _MarkingLoader(spec.loader)
        return spec


def install() -> None:
    """Swap the decorators of ``overrides`` when it is imported (idempotent)."""
    if _PACKAGE in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())

