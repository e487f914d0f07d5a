"""Which chunks hold text that OCR read, and how sure it was: from the pages they span."""

from __future__ import annotations

import bisect
from typing import Any

from docworkers.ingest.document import ParsedDocument


class OcrPages:
    """The OCR fields of a chunk of ``doc.text`` (:class:`~docworkers.ingest.document.Chunk`'s
    ``ocr`` and ``ocr_confidence``): OCR when any page it spans was read by OCR, with the lowest
    confidence among those pages (a chunk is as trustworthy as its weakest page)."""

    def __init__(self, doc: ParsedDocument) -> None:
        self._pages = doc.pages
        self._starts = [start for start, _end, _number in doc.page_spans()]
        self._any = any(page.ocr for page in doc.pages)

    def fields(self, start: int, end: int) -> dict[str, Any]:
        """``{"ocr": True, "ocr_confidence": ...}`` for the chunk ``[start, end)``, else {}."""
        if not self._any or start >= end:
            return {}
        first = max(bisect.bisect_right(self._starts, start) - 1, 0)
        last = max(bisect.bisect_right(self._starts, end - 1) - 1, 0)
        read = [page for page in self._pages[first:last + 1] if page.ocr]
        if not read:
            return {}
        known = [page.ocr_confidence for page in read if page.ocr_confidence is not None]
        return {"ocr": True, "ocr_confidence": min(known) if known else None}
