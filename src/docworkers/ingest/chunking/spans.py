"""Turning a strategy's rough character spans into chunks that keep the chunker's promises.

Every strategy proposes ``(start, end)`` spans; :func:`finalize_spans` then makes sure that
spans are trimmed of whitespace, in document order, cover every non-whitespace character, and
hold at most ``chunk_size`` tokens and :func:`max_chunk_chars` characters, whatever the
strategy did. The token promise is kept by recounting each chunk on its own text, which is what
the model will see.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable

from docworkers.ingest.defaults import MAX_CHARS_PER_TOKEN
from docworkers.ingest.tokenizer import TokenCounter

Span = tuple[int, int]
#: (start, end, token count)
CountedSpan = tuple[int, int, int]

# The last whitespace character before the end of the searched range (``match.end() - 1``).
_LAST_SPACE = re.compile(r"(?s:.*)\s")


def max_chunk_chars(chunk_size: int) -> int:
    """The most characters a chunk of ``chunk_size`` tokens may hold (see
    :data:`~docworkers.ingest.defaults.MAX_CHARS_PER_TOKEN`)."""
    return chunk_size * MAX_CHARS_PER_TOKEN


def measure(chunk_size: int, counter: TokenCounter) -> Callable[[str], int]:
    """The size of a piece of text in tokens, or more if it holds more characters than a chunk
    of that many tokens may: ``measure(piece) <= chunk_size`` exactly when the piece fits.
    Pieces too long in characters are never tokenized, so measuring stays cheap on huge runs."""
    limit = max_chunk_chars(chunk_size)

    def size(piece: str) -> int:
        if len(piece) > limit:
            return -(-len(piece) // MAX_CHARS_PER_TOKEN)
        return counter.count(piece)

    return size


def trim(text: str, start: int, end: int) -> Span:
    """``(start, end)`` narrowed to exclude leading and trailing whitespace."""
    piece = text[start:end]
    stripped = piece.lstrip()
    start += len(piece) - len(stripped)
    end = start + len(stripped.rstrip())
    return start, end


def finalize_spans(
    text: str, spans: Iterable[Span], chunk_size: int, counter: TokenCounter
) -> list[CountedSpan]:
    """Trim, order, close gaps and enforce the size limits; returns spans with token counts."""
    ordered = sorted(s for s in (trim(text, a, b) for a, b in spans) if s[0] < s[1])
    kept: list[list[int]] = []
    for start, end in ordered:
        if kept and start == kept[-1][0]:
            kept[-1][1] = max(kept[-1][1], end)  # same start: keep the longer
        elif not kept or end > kept[-1][1]:
            kept.append([start, end])  # a span inside the previous one adds nothing
    first, last = trim(text, 0, len(text))
    if first >= last:
        return []
    if not kept:
        kept = [[first, last]]
    # No non-whitespace character may fall outside every chunk (e.g. a zero-width character
    # that produces no token, between two token windows): it joins the chunk before it.
    kept[0][0] = min(kept[0][0], first)
    for current, following in itertools.pairwise(kept):
        if following[0] > current[1]:
            current[1] = trim(text, current[0], following[0])[1]
    kept[-1][1] = max(kept[-1][1], last)

    limit = max_chunk_chars(chunk_size)
    out: list[CountedSpan] = []
    for start, end in kept:
        count = counter.count(text[start:end]) if end - start <= limit else chunk_size + 1
        if count <= chunk_size:
            out.append((start, end, count))
        else:
            _append_in_order(out, split_to_fit(text, start, end, chunk_size, counter))
    return out


def _append_in_order(out: list[CountedSpan], pieces: list[CountedSpan]) -> None:
    """Append the pieces of a span that was too big, keeping chunks in strict document order.

    A strategy's spans may overlap, and the pieces of one of them need not respect the order of
    its neighbour's: a piece inside the chunks before it adds nothing (its characters are
    covered), and chunks inside a piece give way to it.
    """
    for piece in pieces:
        while out and piece[0] <= out[-1][0] and piece[1] >= out[-1][1]:
            out.pop()
        if out and (piece[1] <= out[-1][1] or piece[0] <= out[-1][0]):
            continue
        out.append(piece)


def split_to_fit(
    text: str, start: int, end: int, chunk_size: int, counter: TokenCounter
) -> list[CountedSpan]:
    """Cut ``text[start:end]`` into pieces that fit: first into pieces of at most
    :func:`max_chunk_chars` characters (at the last whitespace of each, if it is in the second
    half), then halving pieces that hold too many tokens (at whitespace near the middle if any).

    The last resort. A single character is at most 3 tokens (a Hangul syllable), so with
    ``chunk_size >= 3`` every piece fits; a lone character is kept whatever its count.
    """
    limit = max_chunk_chars(chunk_size)
    out: list[CountedSpan] = []
    stack: list[Span] = [(start, end)]
    while stack:
        a, b = stack.pop()
        a, b = trim(text, a, b)
        if a >= b:
            continue
        if b - a > limit:
            space = _LAST_SPACE.match(text, a + limit // 2, a + limit + 1)
            at = space.end() - 1 if space is not None else a + limit
            stack.append((at, b))
            stack.append((a, at))  # popped first: document order
            continue
        count = counter.count(text[a:b])
        if count <= chunk_size or b - a == 1:
            out.append((a, b, count))
            continue
        middle = (a + b) // 2
        cut = _whitespace_near(text, a, b, middle)
        if cut is None:
            left, right = (a, middle), (middle, b)
        else:
            left, right = (a, cut), (cut + 1, b)
        stack.append(right)
        stack.append(left)  # popped first: document order
    return out


def _whitespace_near(text: str, start: int, end: int, middle: int) -> int | None:
    """The whitespace position closest to ``middle`` strictly inside (start, end), if any."""
    left = middle
    right = middle
    while left > start or right < end - 1:
        if left > start and text[left].isspace():
            return left
        if right < end - 1 and text[right].isspace():
            return right
        left -= 1
        right += 1
    return None


class PageMap:
    """Finds the page number of a character offset of ``ParsedDocument.text``."""

    def __init__(self, page_spans: list[tuple[int, int, int | None]]) -> None:
        self._starts = [start for start, _end, _number in page_spans]
        self._numbers = [number for _start, _end, number in page_spans]

    def page_of(self, offset: int) -> int | None:
        if not self._starts:
            return None
        index = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        return self._numbers[index]
