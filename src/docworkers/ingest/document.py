"""The values that flow through the ingestion pipeline: parsed pages and chunks.

Kept in one small module so parsers, chunkers, embedders and vector stores agree on them without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Page:
    """The text of one page (PDF) or of the whole document (formats without pages)."""

    text: str
    number: int | None = None  # 1-based page number for paged formats, else None
    ocr: bool = False  # the text was recognised in the page's image, not read from its text
    ocr_confidence: float | None = None  # OCR's mean word confidence on the page, 0-100


@dataclass(slots=True)
class ParsedDocument:
    """What a parser extracts: text by page plus the file's own metadata.

    ``metadata`` holds only what the file itself states (title, author, created, modified,
    page_count, language ...), with JSON-serialisable values.
    """

    filename: str
    kind: str  # "pdf", "docx", "html", "markdown" or "text"
    pages: list[Page]
    metadata: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False  # True when max_pages cut the document short

    @property
    def text(self) -> str:
        """All pages joined with blank lines (page boundaries are kept in ``page_spans``)."""
        return "\n\n".join(page.text for page in self.pages)

    def page_spans(self) -> list[tuple[int, int, int | None]]:
        """(start, end, page number) character spans of each page inside :attr:`text`."""
        spans: list[tuple[int, int, int | None]] = []
        offset = 0
        for page in self.pages:
            spans.append((offset, offset + len(page.text), page.number))
            offset += len(page.text) + 2
        return spans


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document, sized in tokens of the embedding model."""

    index: int
    text: str
    start_char: int  # offsets into ParsedDocument.text
    end_char: int
    token_count: int
    page_start: int | None = None
    page_end: int | None = None
    ocr: bool = False  # some of its text comes from OCR
    ocr_confidence: float | None = None  # the lowest of those pages' OCR confidences, 0-100
