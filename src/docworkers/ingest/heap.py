"""Handing freed memory back to the operating system after a document (glibc's malloc_trim).

A worker's RSS is the sum over its threads' malloc arenas of what they ever held: a large
document parsed, chunked or embedded in one thread leaves free but still resident pages behind
in that thread's arena, and the next large document, handled by another thread, grows another
arena. ``malloc_trim(0)`` returns the free pages of every arena. It costs a few milliseconds,
so it runs once per document (after the document's last stage, and in the parser child after
each reply), which keeps the process tree's peak near the largest single document's needs
(``benchmarks/peak_memory.py``, ``benchmarks/ingest_throughput.py``). A no-op where the C
library has no ``malloc_trim`` (musl, macOS).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

__all__ = ["trim_heap"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:  # the symbols already loaded into this process, the C library's among them
        function: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return function


def trim_heap() -> None:
    """Return the C heap's free pages to the operating system, if the C library can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
