"""Plain text and Markdown: decode carefully, keep the text as written, find a title."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from docworkers.errors import NoExtractableTextError
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.parsing._common import normalize_newlines
from docworkers.ingest.parsing.encoding import decode_text
from docworkers.ingest.parsing.limits import ParseLimits

_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# Invisible controls (not tab/newline/form feed) are dropped; the text is otherwise kept as is.
_CONTROLS = {c: None for c in (*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, 0xFEFF)}
_TITLE_SCAN_LINES = 2000


def parse_text(data: bytes, filename: str, kind: str, limits: ParseLimits) -> ParsedDocument:
    """Parse ``data`` as "text" or "markdown"; markdown's title is its first heading."""
    text, encoding = decode_text(data, filename)
    text = normalize_newlines(text).translate(_CONTROLS)
    if not text.strip():
        raise NoExtractableTextError(
            filename, "the file contains only whitespace; there is no text to index."
        )
    if _is_base64_blob(text):
        raise NoExtractableTextError(
            filename,
            "the file holds base64-encoded data, not readable text; decode it and upload the "
            "original document instead.",
        )
    truncated = len(text) > limits.max_chars
    text = text[: limits.max_chars]
    metadata: dict[str, Any] = {"encoding": encoding}
    if kind == "markdown":
        title = markdown_title(text)
        if title:
            metadata["title"] = title
    return ParsedDocument(filename, kind, [Page(text)], metadata, truncated)


def markdown_title(text: str) -> str | None:
    """The first ATX ("# Title") or setext heading outside YAML front matter and code fences."""
    lines = text.split("\n", _TITLE_SCAN_LINES)[:_TITLE_SCAN_LINES]
    start = 0
    if lines and lines[0].strip() == "---":  # front matter: its closing "---" is no underline
        ends = (i for i, line in enumerate(lines[1:], 1) if line.strip() in {"---", "..."})
        start = next(ends, -1) + 1
    fence: str | None = None
    previous = ""
    for line in lines[start:]:
        found = _FENCE.match(line)
        if found:
            marker = found.group(1)
            fence = None if fence == marker else fence or marker
            previous = ""
            continue
        if fence:
            continue
        heading = _ATX_HEADING.match(line)
        if heading:
            return heading.group(1).strip()
        if previous.strip() and _SETEXT_UNDERLINE.match(line):
            return previous.strip()
        previous = line
    return None


def _is_base64_blob(text: str) -> bool:
    """True for a file that is one base64 payload (no words, only the base64 alphabet)."""
    if len(text) > 10_000_000 or " " in text.strip():
        return False  # checked first: split() of a big text would cost ~15x its size
    lines = text.split()
    if sum(len(line) for line in lines) < 40:
        return False
    if any(not _BASE64_LINE.fullmatch(line) for line in lines):
        return False
    joined = "".join(lines)
    if joined.isalpha() or joined.isdigit():
        return False  # a long word or number is not base64 evidence
    try:
        base64.b64decode(joined, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
