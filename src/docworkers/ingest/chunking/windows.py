"""Token-window strategies: ``fixed`` (exact windows) and ``token`` (windows cut between words).

Both tokenize the whole text once (:func:`~docworkers.ingest.tokenizer.token_spans`) and walk
it in windows of ``chunk_size`` tokens, each starting ``chunk_size - chunk_overlap`` tokens
after the previous one.

* ``fixed`` ignores the text's structure: windows end exactly after ``chunk_size`` tokens, even
  inside a word. A window that begins inside a word may tokenize to more tokens on its own
  (``##ing`` becomes ``ing`` plus more pieces), so such windows are shortened until they fit,
  and overlaps that begin inside a word start later until they fit ``chunk_overlap``.
* ``token`` moves each cut back to the nearest whitespace in the second half of the window
  (else to the nearest word or punctuation boundary, else it cuts like ``fixed``), and moves each
  overlap start forward to such a boundary, so no word is split and overlaps never exceed the
  requested size.

Windows are also bounded in characters (:func:`~docworkers.ingest.chunking.spans.max_chunk_chars`):
a window ends early rather than span more, and a single token longer than that (a run of more
than 100 non-space characters is one unknown token) is a window of its own that
:func:`~docworkers.ingest.chunking.spans.finalize_spans` cuts into pieces.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from docworkers.ingest.chunking.spans import Span, max_chunk_chars
from docworkers.ingest.tokenizer import TokenCounter, TokenSpans, token_spans


def _last_true(mask: NDArray[np.bool_], low: int, high: int) -> int | None:
    """The largest i in [low, high) with mask[i], or None."""
    if high <= low:
        return None
    hits = np.flatnonzero(mask[low:high])
    return low + int(hits[-1]) if len(hits) else None


def _first_true(mask: NDArray[np.bool_], low: int, high: int) -> int | None:
    """The smallest i in [low, high) with mask[i], or None."""
    if high <= low:
        return None
    hits = np.flatnonzero(mask[low:high])
    return low + int(hits[0]) if len(hits) else None


def _char_cut(tokens: TokenSpans, start: int, end: int) -> int:
    """A cut before token ``end``, moved back (else forward) so that no character is split."""
    if end >= len(tokens) or tokens.char_start[end]:
        return end
    found = _last_true(tokens.char_start, start + 1, end)
    if found is None:
        found = _first_true(tokens.char_start, end, len(tokens))
    return len(tokens) if found is None else found


def _snap_end(tokens: TokenSpans, start: int, end: int) -> int:
    """Move a cut before token ``end`` back to a boundary between words (see module doc)."""
    if end >= len(tokens):
        return len(tokens)
    half = start + max((end - start) // 2, 1)
    for mask, low in (
        (tokens.space_before, half),
        (tokens.word_start, half),
        (tokens.space_before, start + 1),
        (tokens.word_start, start + 1),
    ):
        found = _last_true(mask, low, end + 1)
        if found is not None:
            return found
    return _char_cut(tokens, start, end)


def _snap_start(tokens: TokenSpans, low: int, end: int, *, words: bool) -> int:
    """The first boundary in [low, end] (between words, preferring whitespace, if ``words``;
    else between characters); ``end`` if there is none."""
    masks = (tokens.space_before, tokens.word_start) if words else (tokens.char_start,)
    for mask in masks:
        found = _first_true(mask, low, end)
        if found is not None:
            return found
    return end


def _char_span(text: str, tokens: TokenSpans, start: int, end: int, limit: int) -> Span:
    """Characters of tokens [start, end), widened over adjacent characters that make no token
    (deleted by the normalizer, like the C1 controls of mojibake) up to the nearest whitespace,
    while the span holds at most ``limit`` characters (finalize_spans covers the rest)."""
    first = int(tokens.starts[start])
    last = int(tokens.ends[end - 1])
    floor = max(int(tokens.ends[start - 1]) if start > 0 else 0, last - limit)
    while first > floor and not text[first - 1].isspace():
        first -= 1
    ceiling = min(int(tokens.starts[end]) if end < len(tokens) else len(text), first + limit)
    while last < ceiling and not text[last].isspace():
        last += 1
    return first, last


def _char_limit(tokens: TokenSpans, start: int, end: int, limit: int) -> int:
    """``end``, lowered so that tokens [start, end) span at most ``limit`` characters (at
    least one token, even if it alone is longer)."""
    furthest = int(np.searchsorted(tokens.ends, tokens.starts[start] + limit, side="right"))
    return max(start + 1, min(end, furthest))


def token_windows(
    text: str,
    chunk_size: int,
    chunk_overlap: int,
    counter: TokenCounter,
    *,
    snap_to_words: bool,
) -> list[Span]:
    """Character spans of token windows over ``text`` (``token`` or ``fixed`` strategy)."""
    tokens = token_spans(text, counter.tokenizer)
    total = len(tokens)
    limit = max_chunk_chars(chunk_size)
    spans: list[Span] = []
    start = 0
    while start < total:
        full = min(start + chunk_size, total)
        end = _char_limit(tokens, start, full, limit)
        # A window cut short by the character limit overlaps the next in proportion, or windows
        # of a few long tokens would each advance by one token and repeat the text many times.
        overlap = chunk_overlap if end == full else chunk_overlap * (end - start) // chunk_size
        end = _snap_end(tokens, start, end) if snap_to_words else _char_cut(tokens, start, end)
        if not tokens.word_start[start]:
            # Begins inside a word: the piece may tokenize to more tokens on its own.
            while end - start > 1 and (
                counter.count(text[tokens.starts[start] : tokens.ends[end - 1]]) > chunk_size
            ):
                shorter = _char_cut(tokens, start, end - 1)
                if shorter >= end:
                    break  # cannot shrink without splitting a character: finalize_spans splits
                end = shorter
        spans.append(_char_span(text, tokens, start, end, limit))
        if end >= total:
            break
        following = max(end - overlap, start + 1)
        if _char_limit(tokens, following, end + 1, limit) <= end:
            following = end  # the next window could not reach past this one: no overlap
        if following < end:
            following = _snap_start(tokens, following, end, words=snap_to_words)
        # An overlap that begins inside a word may tokenize to more tokens on its own.
        while (
            following < end
            and not tokens.word_start[following]
            and counter.count(text[tokens.starts[following] : tokens.ends[end - 1]]) > chunk_overlap
        ):
            following = _snap_start(tokens, following + 1, end, words=False)
        start = following
    return spans
