"""Offline, deterministic enrichment: document metadata, language, keywords and questions.

Everything here is a pure function of its input (no network, no model download, no randomness):
the same document always gets the same title, language, keywords and questions. The
:class:`Enricher` protocol lets the pipeline swap in an LLM-backed enricher
(:mod:`docworkers.ingest.enrich_llm`); :class:`LocalEnricher` is the default.

Methods are synchronous and CPU-bound (YAKE takes 10-15 ms per 256-token chunk, the rest is
negligible); async callers use ``asyncio.to_thread``.

Language detection and word counts live in :mod:`~docworkers.ingest.enrich_language`, keywords
in :mod:`~docworkers.ingest.enrich_keywords`, questions in
:mod:`~docworkers.ingest.enrich_questions`; this module re-exports their public names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Protocol

from docworkers.errors import ConfigurationError
from docworkers.ingest.document import ParsedDocument
from docworkers.ingest.enrich_keywords import extract_keywords
from docworkers.ingest.enrich_language import SAMPLE_CHARS, count_words, detect_language
from docworkers.ingest.enrich_questions import MAX_QUESTIONS, generate_questions

__all__ = [
    "MAX_QUESTIONS",
    "MAX_TITLE_CHARS",
    "Enricher",
    "LocalEnricher",
    "count_words",
    "detect_language",
    "extract_document_metadata",
    "extract_keywords",
    "generate_questions",
]

MAX_TITLE_CHARS = 200


class Enricher(Protocol):
    """Adds searchable metadata to documents and chunks."""

    def document_metadata(self, doc: ParsedDocument) -> dict[str, Any]: ...

    def keywords(self, text: str, language: str, top_n: int = 5) -> list[str]: ...

    def questions(
        self, text: str, n: int, keywords: Sequence[str], language: str = "en"
    ) -> list[str]: ...


class LocalEnricher:
    """:class:`Enricher` from heuristics and YAKE: fast, offline and deterministic."""

    def __init__(self, *, max_ngram: int = 3) -> None:
        if not 1 <= max_ngram <= 5:
            raise ConfigurationError("max_ngram", f"must be between 1 and 5, got {max_ngram}")
        self.max_ngram = max_ngram

    def document_metadata(self, doc: ParsedDocument) -> dict[str, Any]:
        return extract_document_metadata(doc)

    def keywords(self, text: str, language: str, top_n: int = 5) -> list[str]:
        return extract_keywords(text, language, top_n, max_ngram=self.max_ngram)

    def questions(
        self, text: str, n: int, keywords: Sequence[str], language: str = "en"
    ) -> list[str]:
        return generate_questions(text, n, keywords, language=language)


# --- document metadata -----------------------------------------------------------------------

_JUNK_TITLES = re.compile(
    r"^(untitled(\s+document)?|document\d*|title|slide \d+|microsoft (word|powerpoint)( - .*)?)$",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^#\s+(.+?)(?:\s+#+)?\s*$", re.MULTILINE)
_ANY_HEADING_MARK = re.compile(r"^#{1,6}\s+")


def extract_document_metadata(doc: ParsedDocument) -> dict[str, Any]:
    """title, author, created, modified, page_count, language, word_count, char_count.

    The title is the file's own title (unless it is a placeholder like "Untitled"), else the
    first ``# `` heading, else the first short non-empty line, else the filename stem. author,
    created and modified come from the file's metadata (None when absent). The language is
    detected from the text; the file's declared language is used only when detection fails,
    because templates often declare a language the text is not written in.
    """
    text = doc.text
    declared = _primary_language(doc.metadata.get("language"))
    detected = detect_language(text)
    return {
        "title": _title(doc),
        "author": _scalar(doc.metadata.get("author")),
        "created": _scalar(doc.metadata.get("created")),
        "modified": _scalar(doc.metadata.get("modified")),
        "page_count": _page_count(doc),
        "language": declared if detected == "und" and declared else detected,
        "word_count": count_words(text),
        "char_count": len(text),
    }


def _title(doc: ParsedDocument) -> str:
    declared = doc.metadata.get("title")
    if isinstance(declared, str):
        candidate = " ".join(declared.split())
        if candidate and not _JUNK_TITLES.match(candidate):
            return candidate[:MAX_TITLE_CHARS]
    head = doc.text[:SAMPLE_CHARS]
    heading = _HEADING.search(head)
    if heading:
        return " ".join(heading.group(1).split())[:MAX_TITLE_CHARS]
    for seen, line in enumerate(head.splitlines()):
        line = " ".join(_ANY_HEADING_MARK.sub("", line.strip()).split())
        if 3 <= len(line) <= 120 and any(ch.isalpha() for ch in line) and line[0] not in "|`<{":
            return line
        if seen > 40:
            break
    return PurePath(doc.filename).stem or doc.filename


def _page_count(doc: ParsedDocument) -> int | None:
    declared = doc.metadata.get("page_count")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 0:
        return declared
    numbered = [page.number for page in doc.pages if page.number is not None]
    return len(numbered) if numbered else None


def _scalar(value: Any) -> str | int | float | None:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None if value is None else str(value)


def _primary_language(value: Any) -> str | None:
    """``"en-US"`` -> ``"en"``; None for anything that is not a language tag."""
    if not isinstance(value, str):
        return None
    primary = re.split(r"[-_]", value.strip().lower(), maxsplit=1)[0]
    return primary if re.fullmatch(r"[a-z]{2}", primary) else None
