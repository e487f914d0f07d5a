"""Sentence-based strategies: ``sentence`` (pack whole sentences) and ``semantic``.

Sentences are found with a small rule set rather than a language model: a sentence ends after
``.``, ``!``, ``?`` or ``…`` (plus closing quotes or brackets and reference marks like ``[6]``)
followed by whitespace, after the
CJK full stop, exclamation and question marks, and at every blank line (a paragraph or heading
ends). A period after a common abbreviation (``Mr.``, ``e.g.``) or a single capital letter (an
initial) ends nothing.

``sentence`` packs consecutive sentences into chunks of at most ``chunk_size`` tokens and starts
each chunk with the previous chunk's last sentences, as many as fit in ``chunk_overlap`` tokens.
``semantic`` first embeds every sentence, then, at each gap between sentences, compares the
mean vector of the two sentences before it with that of the two after it; it cuts the text at
the gaps where they differ most (cosine distance above the ``breakpoint_percentile``-th
percentile of all gaps) and packs each part as ``sentence`` does; a part never shares a chunk
with another. Sentences longer than ``chunk_size`` are cut into ``token`` windows.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from docworkers.ingest.chunking.spans import Span, max_chunk_chars, measure, trim
from docworkers.ingest.chunking.windows import token_windows
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.tokenizer import TokenCounter

_BOUNDARY = re.compile(
    "[.!?\u2026]+[\"'\u201d\u2019\u00bb)\\]]*(?:\\[\\d+\\])*(?=\\s)"  # closers, notes [6]
    "|[\u3002\uff01\uff1f]+[\u300d\u300f\u201d\u2019\uff09]*"  # CJK marks need no space
    r"|\n[^\S\n]*\n"  # a blank line
)
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "cf", "fig"}
    | {"no", "vol", "al", "approx", "dept", "inc", "ltd", "co", "corp"}
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")
# Sentences embedded per call in the semantic strategy (bounds memory on huge documents).
_EMBED_BLOCK = 512
# Sentences on each side of a gap whose mean vectors the semantic strategy compares.
_WINDOW = 2


def sentence_spans(text: str) -> list[Span]:
    """Trimmed character spans of the sentences of ``text``, in order, covering all of it."""
    spans: list[Span] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group().startswith(".") and _is_abbreviation(text, match.start()):
            continue
        spans.append(trim(text, start, match.end()))
        start = match.end()
    spans.append(trim(text, start, len(text)))
    return [span for span in spans if span[0] < span[1]]


def _is_abbreviation(text: str, period: int) -> bool:
    found = _WORD_BEFORE.search(text, max(0, period - 20), period)
    if found is None:
        return False
    word = found.group(1)
    return (len(word) == 1 and word.isupper()) or word.lower().rstrip(".") in _ABBREVIATIONS


def pack_sentences(
    text: str,
    sentences: list[Span],
    chunk_size: int,
    chunk_overlap: int,
    counter: TokenCounter,
) -> list[Span]:
    """Greedy packing of whole sentences into spans of at most ``chunk_size`` tokens (and
    :func:`~docworkers.ingest.chunking.spans.max_chunk_chars` characters)."""
    size_of = measure(chunk_size, counter)  # a sentence too long in characters is too big
    limit = max_chunk_chars(chunk_size)
    counts = [size_of(text[a:b]) for a, b in sentences]
    spans: list[Span] = []
    current: list[int] = []  # indices into sentences
    tokens = 0

    def flush() -> None:
        if current:
            spans.append((sentences[current[0]][0], sentences[current[-1]][1]))

    for index, count in enumerate(counts):
        if count > chunk_size:  # one sentence too long for a chunk: cut it into windows
            flush()
            current, tokens = [], 0
            a, b = sentences[index]
            windows = token_windows(
                text[a:b], chunk_size, chunk_overlap, counter, snap_to_words=True
            )
            spans.extend((a + start, a + end) for start, end in windows)
            continue
        if current and (
            tokens + count > chunk_size or sentences[index][1] - sentences[current[0]][0] > limit
        ):
            flush()
            # Carry the last sentences over, as many as fit in the overlap and beside the next.
            carried: list[int] = []
            carried_tokens = 0
            for previous in reversed(current[1:] if len(current) > 1 else []):
                size = counts[previous]
                if carried_tokens + size > chunk_overlap or (
                    carried_tokens + size + count > chunk_size
                    or sentences[index][1] - sentences[previous][0] > limit
                ):
                    break
                carried.insert(0, previous)
                carried_tokens += size
            current, tokens = carried, carried_tokens
        current.append(index)
        tokens += count
    flush()
    return spans


def semantic_spans(
    text: str,
    chunk_size: int,
    chunk_overlap: int,
    counter: TokenCounter,
    embedder: Embedder,
    breakpoint_percentile: float,
    checkpoint: Callable[[], None] | None = None,
) -> list[Span]:
    """Spans that break where the topic changes, then packed to size (see module doc).
    ``checkpoint`` is called before each embedding call."""
    sentences = sentence_spans(text)
    if len(sentences) < 3:
        return pack_sentences(text, sentences, chunk_size, chunk_overlap, counter)
    blocks = []
    for i in range(0, len(sentences), _EMBED_BLOCK):
        if checkpoint is not None:
            checkpoint()
        blocks.append(embedder.embed([text[a:b] for a, b in sentences[i : i + _EMBED_BLOCK]]))
    vectors = np.concatenate(blocks)
    # Single sentences are noisy: compare the _WINDOW sentences before each gap with the
    # _WINDOW after it (mean vectors), so the distance measures the change across the gap.
    cumulative = np.concatenate([np.zeros((1, vectors.shape[1])), np.cumsum(vectors, axis=0)])
    gaps = np.arange(1, len(sentences))  # gap g lies between sentence g - 1 and g
    left = cumulative[gaps] - cumulative[np.maximum(gaps - _WINDOW, 0)]
    right = cumulative[np.minimum(gaps + _WINDOW, len(sentences))] - cumulative[gaps]
    left /= np.maximum(np.linalg.norm(left, axis=1, keepdims=True), 1e-12)
    right /= np.maximum(np.linalg.norm(right, axis=1, keepdims=True), 1e-12)
    distances = 1.0 - np.einsum("ij,ij->i", left, right)
    threshold = float(np.percentile(distances, breakpoint_percentile))
    breaks = gaps[distances > threshold].tolist()
    spans: list[Span] = []
    for begin, end in zip([0, *breaks], [*breaks, len(sentences)], strict=True):
        spans.extend(pack_sentences(text, sentences[begin:end], chunk_size, chunk_overlap, counter))
    return spans
