"""Long texts are chunked a bounded segment at a time: linear time, bounded memory, stoppable.

The strategies are not linear in the length of what they are given: ``semantic_text_splitter``
looks at the rest of the text again for every chunk it cuts, so a text without line breaks
took time quadratic in its length (4 MiB on one line: 36 s; 20 MiB: stuck for minutes), and
``token_spans`` holds every token of its text in Python lists. :func:`segments` therefore cuts
a text into pieces of at most :data:`SEGMENT_CHARS` characters and each piece is chunked on its
own; the caller checks its deadline between pieces, so a time limit can stop chunking within
the time one segment takes.

A cut is placed where a chunk boundary is natural, the strongest found in the second half of
the window: a blank line, else a line break, a sentence end, whitespace, and for one unbroken
run of characters at the window's end (never before a combining mark). A document shorter than
a segment is chunked exactly as before; a longer one gets one forced chunk boundary per
segment, about one every 50 chunks of prose, nearly always at a paragraph or line break.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from docworkers.ingest.chunking.spans import Span

__all__ = ["SEGMENT_CHARS", "segments"]

#: Characters chunked at once. The splitter's work per chunk grows with this; at 64 Ki
#: characters a line of 1 MiB chunks in about the time of 1 MiB of ordinary prose.
SEGMENT_CHARS = 65_536

# The end of a sentence (as in sentences._BOUNDARY, without the abbreviation check: a segment
# cut only needs to be plausible).
_SENTENCE_END = re.compile(
    "[.!?\u2026][\"'\u201d\u2019\u00bb)\\]]*(?=\\s)|[\u3002\uff01\uff1f][\u300d\u300f\u201d\u2019\uff09]*"
)
_SPACES = (" ", "\t", "\u3000", "\xa0", "\u2028", "\u2029")


def segments(text: str, limit: int | None = None) -> Iterator[Span]:
    """``(start, end)`` pieces that cover ``text`` in order, each at most ``limit`` long
    (default :data:`SEGMENT_CHARS`, read at each call)."""
    limit = SEGMENT_CHARS if limit is None else limit
    if limit < 2:
        raise ValueError(f"limit must be at least 2, got {limit}")
    start = 0
    while len(text) - start > limit:
        cut = _cut(text, start + limit // 2, start + limit)
        yield start, cut
        start = cut
    if start < len(text):
        yield start, len(text)


def _cut(text: str, low: int, high: int) -> int:
    """The position in (low, high] where the piece before ``high`` is best cut (see module)."""
    for separator in ("\n\n", "\n"):
        found = text.rfind(separator, low, high)
        if found >= 0:
            return found + 1
    last = None
    for match in _SENTENCE_END.finditer(text, low, high):
        last = match.end()
    if last is not None and last > low:
        return last
    found = max(text.rfind(space, low, high) for space in _SPACES)
    if found >= 0:
        return found + 1
    cut = high
    while cut > low + 1 and unicodedata.combining(text[cut]):
        cut -= 1  # keep an accent with its letter
    return cut
