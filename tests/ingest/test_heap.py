"""trim_heap hands the free pages of the C heap back to the system (glibc's malloc_trim)."""

from __future__ import annotations

from pathlib import Path

from docworkers.ingest.heap import trim_heap


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_trim_heap_returns_the_pages_a_freed_document_left_behind() -> None:
    # 600-byte objects come from malloc (not Python's small-object pools); keeping every 64th
    # alive leaves the freed ones scattered, so free() alone cannot shrink the heap.
    blocks = [bytes(600) + i.to_bytes(4, "little") for i in range(200_000)]
    kept = blocks[::64]
    del blocks
    before = rss_mb()
    trim_heap()
    after = rss_mb()
    assert before - after > 40, (before, after)  # ~120 MB were freed
    assert len(kept) == 3125
    trim_heap()  # harmless when there is nothing to return
