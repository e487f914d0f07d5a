"""Markdown tables stay whole in one chunk when they fit; split ones repeat their header.

The parsers write every table as a Markdown table (:mod:`docworkers.ingest.parsing.tables`):
a header row, a ``|---|`` rule, one line per row. Cut by a text splitter, the rows after the
first chunk would lose what their columns mean ("| Acme | 120 |" of what?). So the chunker
takes table blocks out of the text (:func:`table_blocks`) and packs their rows itself
(:func:`pack_table`): whole rows per chunk while they fit, and every chunk after the first
starts with the header row and rule, counted in its token and character budget. Such a chunk's
``start_char``/``end_char`` still point at its rows in the document text; its text is the
header, a newline, then exactly those characters. A row too big for one chunk is cut by
:func:`~docworkers.ingest.chunking.spans.split_to_fit` into pieces that each carry the header;
a header too big to repeat (more than half a chunk) is not repeated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from docworkers.ingest.chunking.spans import max_chunk_chars, split_to_fit, trim
from docworkers.ingest.tokenizer import TokenCounter

__all__ = ["Piece", "TableBlock", "pack_table", "table_blocks"]

_CHECK_EVERY = 256  # rows between deadline checks

# A header row, then a rule row ("|---|:--:|"), then any further "|...|" lines.
_TABLE = re.compile(
    r"^\|[^\n]*\|[ \t]*\n\|(?:[ \t]*:?-{3,}:?[ \t]*\|)+[ \t]*(?:\n\|[^\n]*\|[ \t]*(?=\n|$))*",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class TableBlock:
    """A Markdown table in the text: [start, end), the header and rule ending at ``body``."""

    start: int
    end: int
    body: int  # offset of the newline after the rule: the rows follow it


@dataclass(frozen=True, slots=True)
class Piece:
    """A chunk: ``prefix`` (a repeated header, or '') + text[start:end], ``count`` tokens."""

    start: int
    end: int
    count: int
    prefix: str = ""


def table_blocks(text: str) -> list[TableBlock]:
    """The Markdown tables of ``text`` (header, rule and at least one row), in order."""
    blocks: list[TableBlock] = []
    for match in _TABLE.finditer(text):
        header_end = text.index("\n", match.start())
        rule_end = text.find("\n", header_end + 1)
        if rule_end == -1 or rule_end >= match.end():
            continue  # a header and rule without rows: ordinary text
        blocks.append(TableBlock(match.start(), match.end(), rule_end))
    return blocks


def pack_table(
    text: str,
    block: TableBlock,
    chunk_size: int,
    counter: TokenCounter,
    check: Callable[[], None] | None = None,
) -> list[Piece]:
    """Chunks of one table block (see module doc): whole if it fits, else rows packed
    greedily, each chunk after the first starting with the header.

    Each row is counted once: :class:`~docworkers.ingest.tokenizer.TokenCounter` counts are
    sums over whitespace-separated runs, so a chunk's count is the sum of its lines' counts
    (rows joined by newlines). ``check`` (a deadline) is called every few hundred rows."""
    limit = max_chunk_chars(chunk_size)
    whole = _fits(text, block.start, block.end, "", chunk_size, limit, counter)
    if whole is not None:
        return [Piece(block.start, block.end, whole)]
    header = text[block.start : block.body] + "\n"
    header_count = counter.count(header)
    if header_count * 2 > chunk_size or len(header) * 2 > limit:
        header, header_count = "", 0  # a header this big would crowd out the rows
    # the first chunk holds the header itself, as its first line
    lines = [(block.start, block.body), *_rows(text, block.body + 1, block.end)]
    pieces: list[Piece] = []
    start: int | None = None
    end = count = 0
    prefix = ""
    for number, (line_start, line_end) in enumerate(lines):
        if check is not None and number % _CHECK_EVERY == _CHECK_EVERY - 1:
            check()
        tokens = counter.count(text[line_start:line_end])
        if start is not None:
            if count + tokens <= chunk_size and len(prefix) + line_end - start <= limit:
                end, count = line_end, count + tokens
                continue
            pieces.append(Piece(start, end, count, prefix))
            start = None
        prefix = header if pieces else ""
        room = chunk_size - (header_count if prefix else 0)
        if tokens <= room and len(prefix) + line_end - line_start <= limit:
            start, end, count = line_start, line_end, tokens + (header_count if prefix else 0)
            continue
        # a line alone does not fit: cut it into pieces that leave room for the header
        pieces.extend(
            _split_row(text, line_start, line_end, header, chunk_size, counter, first=not pieces)
        )
    if start is not None:
        pieces.append(Piece(start, end, count, prefix))
    return pieces


def _fits(
    text: str,
    start: int,
    end: int,
    prefix: str,
    chunk_size: int,
    limit: int,
    counter: TokenCounter,
) -> int | None:
    """The token count of prefix + text[start:end] if that fits in a chunk, else None."""
    if len(prefix) + end - start > limit:
        return None
    count = counter.count(prefix + text[start:end])
    return count if count <= chunk_size else None


def _rows(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The non-blank lines of text[start:end], trimmed."""
    rows: list[tuple[int, int]] = []
    while start < end:
        stop = text.find("\n", start, end)
        stop = end if stop == -1 else stop
        a, b = trim(text, start, stop)
        if a < b:
            rows.append((a, b))
        start = stop + 1
    return rows


def _split_row(
    text: str,
    start: int,
    end: int,
    header: str,
    chunk_size: int,
    counter: TokenCounter,
    *,
    first: bool,
) -> list[Piece]:
    """text[start:end] (a row, or the table's header and first row) cut to fit with room for
    the header, which every piece carries except the table's very first one."""
    room = chunk_size - counter.count(header) if header else chunk_size
    chars = (max_chunk_chars(chunk_size) - len(header)) // max_chunk_chars(1)
    size = max(min(room, chars), 3)
    out: list[Piece] = []
    for a, b, count in split_to_fit(text, start, end, size, counter):
        prefix = "" if first and not out else header
        total = counter.count(prefix + text[a:b]) if prefix else count
        if prefix and total > chunk_size:  # cannot happen with whole tokens; stay safe
            prefix, total = "", count
        out.append(Piece(a, b, total, prefix))
    return out
