"""Cutting a parsed document into chunks sized in tokens of the embedding model.

``chunk_size`` and ``chunk_overlap`` count all-MiniLM-L6-v2 tokens of the chunk's text for every
strategy, [CLS]/[SEP] excluded (see :mod:`docworkers.ingest.tokenizer`): the largest allowed
``chunk_size`` is the embedder's ``max_tokens`` (254 for the local model, its window of 256
minus those two), which is also the default. Strategies (:data:`CHUNKING_STRATEGIES`):

``recursive`` (default)
    The largest units that fit: blank-line paragraphs, then lines, sentences, words
    (``semantic_text_splitter.TextSplitter``). Fast: 3 MB of text in a few seconds. A unit
    left as a stub of less than a quarter of ``chunk_size`` (a title next to a paragraph that
    fills a chunk, a paragraph's last words) joins its neighbour, cut again between sentences
    if the two do not fit together (:mod:`~docworkers.ingest.chunking.merge`).
``markdown``
    Like ``recursive`` but along Markdown structure: headings first, then blocks, inline
    elements, sentences (``semantic_text_splitter.MarkdownSplitter``); stubs (a heading alone)
    join their neighbour as in ``recursive``.
``sentence``
    Whole sentences packed greedily; overlap in whole sentences.
``semantic``
    Cut where neighbouring sentences' embeddings diverge, then packed like ``sentence``.
    Needs ``embedder``.
``token``
    Windows of ``chunk_size`` tokens whose cuts are moved back to the nearest whitespace, so
    words stay whole (a single "word" longer than a chunk is cut like ``fixed``).
``fixed``
    Windows of ``chunk_size`` document tokens, each starting ``chunk_size - chunk_overlap``
    tokens after the previous, ignoring all structure: words can be cut between word pieces
    (never inside a character). A window that would count more tokens on its own (it starts
    with a ``##`` piece) is shortened until it fits.

Every strategy keeps these promises, checked by property tests: chunks are in document order
(strictly increasing start and end), cover every non-whitespace character, hold at most
``chunk_size`` tokens and ``chunk_size * MAX_CHARS_PER_TOKEN`` characters (see
:func:`~docworkers.ingest.chunking.spans.max_chunk_chars`: a run of 1,000,000 non-space
characters is one token, but never one chunk), overlap their predecessor by at most
``chunk_overlap`` tokens (both counted on the text alone, as the model sees it), and
``chunk.text == doc.text[chunk.start_char:chunk.end_char]``, trimmed of whitespace, except in
one case. Markdown tables (every parser writes tables so) are kept whole in one chunk when they
fit; a table split across chunks repeats its header row and rule at the start of every chunk
after the first, so a chunk's text is then that header, a newline, and
``doc.text[chunk.start_char:chunk.end_char]`` (its rows), the header counted in its token and
character limits (:mod:`~docworkers.ingest.chunking.tables`; not for ``fixed`` and ``token``,
which ignore all structure). A document
without text yields no chunks; deciding whether that is an error is the pipeline's business.

Time and memory grow linearly with the text: long texts are chunked one segment of 64 Ki
characters at a time (:mod:`~docworkers.ingest.chunking.segments`), and ``checkpoint``, if
given, is called before each segment (and between the semantic strategy's embedding calls) so
that a time limit can stop chunking by raising. The ``semantic`` strategy calls the
(synchronous) embedder: run it off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from tokenizers import Tokenizer

from docworkers.errors import ConfigurationError
from docworkers.ingest.chunking.merge import merge_small_chunks
from docworkers.ingest.chunking.ocr_pages import OcrPages
from docworkers.ingest.chunking.segments import segments as text_segments
from docworkers.ingest.chunking.sentences import pack_sentences, semantic_spans, sentence_spans
from docworkers.ingest.chunking.spans import (
    CountedSpan,
    PageMap,
    Span,
    finalize_spans,
    max_chunk_chars,
    measure,
)
from docworkers.ingest.chunking.tables import Piece, pack_table, table_blocks
from docworkers.ingest.chunking.windows import token_windows
from docworkers.ingest.defaults import CHUNKING_STRATEGIES, DEFAULT_STRATEGY
from docworkers.ingest.document import Chunk, ParsedDocument
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.tokenizer import MAX_TEXT_TOKENS, TokenCounter, default_counter

__all__ = [
    "CHUNKING_STRATEGIES",
    "DEFAULT_CHUNK_OVERLAP",
    "DEFAULT_STRATEGY",
    "MIN_CHUNK_SIZE",
    "chunk_document",
    "chunk_text",
    "max_chunk_chars",
    "validate_chunking",
]

# No overlap by default: the structure-aware strategies never cut inside a sentence unless it
# alone exceeds a chunk. Set one for ``token`` and ``fixed``.
DEFAULT_CHUNK_OVERLAP = 0
DEFAULT_BREAKPOINT_PERCENTILE = 90.0
# One character can be up to 3 tokens (a Hangul syllable decomposes into 3 jamo), so tiny sizes
# cannot always be met; 8 tokens is also about the smallest passage worth retrieving.
MIN_CHUNK_SIZE = 8


def validate_chunking(
    strategy: str,
    chunk_size: int,
    chunk_overlap: int,
    *,
    max_tokens: int = MAX_TEXT_TOKENS,
) -> None:
    """Raise :class:`ConfigurationError` naming the first invalid setting, if any."""
    if strategy not in CHUNKING_STRATEGIES:
        raise ConfigurationError(
            "strategy",
            f"unknown chunking strategy {strategy!r}; expected one of "
            f"{', '.join(CHUNKING_STRATEGIES)}",
        )
    for name, value in (("chunk_size", chunk_size), ("chunk_overlap", chunk_overlap)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(name, f"must be a whole number of tokens, got {value!r}")
    if chunk_size < MIN_CHUNK_SIZE:
        raise ConfigurationError(
            "chunk_size", f"must be at least {MIN_CHUNK_SIZE} tokens, got {chunk_size}"
        )
    if chunk_size > max_tokens:
        raise ConfigurationError(
            "chunk_size",
            f"{chunk_size} tokens exceeds the embedding model's window of {max_tokens} text "
            f"tokens (for all-MiniLM-L6-v2: 256 minus [CLS] and [SEP]); the model would "
            f"truncate longer chunks and silently lose text. Use at most {max_tokens}.",
        )
    if chunk_overlap < 0:
        raise ConfigurationError("chunk_overlap", f"must not be negative, got {chunk_overlap}")
    if chunk_overlap >= chunk_size:
        raise ConfigurationError(
            "chunk_overlap",
            f"{chunk_overlap} must be smaller than chunk_size ({chunk_size}), or chunks "
            "would never advance",
        )


def _counter_for(tokenizer: Tokenizer | TokenCounter | None) -> TokenCounter:
    if tokenizer is None:
        return default_counter()
    if isinstance(tokenizer, TokenCounter):
        return tokenizer
    if tokenizer.truncation is not None or tokenizer.padding is not None:
        raise ConfigurationError(
            "tokenizer",
            "truncation and padding must be off to count tokens; use "
            "load_tokenizer(for_counting=True)",
        )
    return TokenCounter(tokenizer)


def _chunk_pieces(
    text: str,
    *,
    strategy: str = DEFAULT_STRATEGY,
    chunk_size: int | None = None,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    tokenizer: Tokenizer | TokenCounter | None = None,
    embedder: Embedder | None = None,
    breakpoint_percentile: float = DEFAULT_BREAKPOINT_PERCENTILE,
    checkpoint: Callable[[], None] | None = None,
) -> list[Piece]:
    """The chunks of ``text`` as :class:`Piece` s; see :func:`chunk_document`."""
    max_tokens = embedder.max_tokens if embedder is not None else MAX_TEXT_TOKENS
    size = max_tokens if chunk_size is None else chunk_size
    validate_chunking(strategy, size, chunk_overlap, max_tokens=max_tokens)
    if strategy == "semantic":
        if embedder is None:
            raise ConfigurationError("embedder", "the semantic strategy needs an embedder")
        if not 0 < breakpoint_percentile < 100:
            raise ConfigurationError(
                "breakpoint_percentile", f"must be between 0 and 100, got {breakpoint_percentile}"
            )
    counter = _counter_for(tokenizer)
    check = checkpoint or _no_checkpoint
    chunk_segment = _segment_chunker(
        strategy, size, chunk_overlap, counter, embedder, breakpoint_percentile, check
    )
    pieces: list[Piece] = []
    # fixed and token windows ignore all structure, Markdown tables included
    tables = table_blocks(text) if strategy not in ("fixed", "token") else []
    position = 0
    for block in [*tables, None]:
        stop = len(text) if block is None else block.start
        pieces.extend(
            _chunk_region(text, position, stop, strategy, size, counter, chunk_segment, check)
        )
        if block is not None:
            check()
            pieces.extend(pack_table(text, block, size, counter, check))
            position = block.end
    return pieces


def _chunk_region(
    text: str,
    region_start: int,
    region_end: int,
    strategy: str,
    size: int,
    counter: TokenCounter,
    chunk_segment: Callable[[str], list[Span]],
    check: Callable[[], None],
) -> list[Piece]:
    """Chunks of text[region_start:region_end] (no table in it), a segment at a time."""
    whole = region_start == 0 and region_end == len(text)
    region = text if whole else text[region_start:region_end]
    counted: list[Piece] = []
    for offset, end in text_segments(region):
        check()
        piece = region[offset:end]
        if piece.isspace():
            continue
        spans = finalize_spans(piece, chunk_segment(piece), size, counter)
        if strategy in ("recursive", "markdown"):
            spans = merge_small_chunks(piece, spans, size, counter)
        base = region_start + offset
        counted.extend(Piece(base + start, base + stop, count) for start, stop, count in spans)
    return counted


def chunk_text(
    text: str,
    *,
    strategy: str = DEFAULT_STRATEGY,
    chunk_size: int | None = None,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    tokenizer: Tokenizer | TokenCounter | None = None,
    embedder: Embedder | None = None,
    breakpoint_percentile: float = DEFAULT_BREAKPOINT_PERCENTILE,
    checkpoint: Callable[[], None] | None = None,
) -> list[CountedSpan]:
    """``(start, end, token_count)`` of each chunk of ``text``; see :func:`chunk_document`
    (a chunk of a split table also carries the table's header, counted in ``token_count``)."""
    pieces = _chunk_pieces(
        text,
        strategy=strategy,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        tokenizer=tokenizer,
        embedder=embedder,
        breakpoint_percentile=breakpoint_percentile,
        checkpoint=checkpoint,
    )
    return [(piece.start, piece.end, piece.count) for piece in pieces]


def _segment_chunker(
    strategy: str,
    size: int,
    chunk_overlap: int,
    counter: TokenCounter,
    embedder: Embedder | None,
    breakpoint_percentile: float,
    check: Callable[[], None],
) -> Callable[[str], list[Span]]:
    """The function that cuts one segment of text into spans with ``strategy`` (settings
    already validated by :func:`chunk_text`)."""
    chunk_segment: Callable[[str], list[Span]]
    if strategy in ("recursive", "markdown"):
        # Imported here: the Rust extension is only needed by these two strategies.
        from semantic_text_splitter import MarkdownSplitter, TextSplitter

        splitter_class = TextSplitter if strategy == "recursive" else MarkdownSplitter
        # Sized in tokens and characters, so that it cuts inside over-long runs itself.
        splitter = splitter_class.from_callback(
            measure(size, counter), size, overlap=chunk_overlap, trim=True
        )

        def chunk_segment(piece: str) -> list[Span]:
            return [(start, start + len(part)) for start, part in splitter.chunk_indices(piece)]

    elif strategy == "sentence":

        def chunk_segment(piece: str) -> list[Span]:
            return pack_sentences(piece, sentence_spans(piece), size, chunk_overlap, counter)

    elif strategy == "semantic":
        assert embedder is not None
        model = embedder

        def chunk_segment(piece: str) -> list[Span]:
            return semantic_spans(
                piece, size, chunk_overlap, counter, model, breakpoint_percentile, check
            )

    else:

        def chunk_segment(piece: str) -> list[Span]:
            return token_windows(
                piece, size, chunk_overlap, counter, snap_to_words=strategy == "token"
            )

    return chunk_segment


def _no_checkpoint() -> None:
    return None


def chunk_document(
    doc: ParsedDocument,
    *,
    strategy: str = DEFAULT_STRATEGY,
    chunk_size: int | None = None,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    tokenizer: Tokenizer | TokenCounter | None = None,
    embedder: Embedder | None = None,
    breakpoint_percentile: float = DEFAULT_BREAKPOINT_PERCENTILE,
    checkpoint: Callable[[], None] | None = None,
) -> list[Chunk]:
    """Cut ``doc.text`` into :class:`Chunk` s with ``strategy`` (see the module docstring).

    ``chunk_size`` defaults to the model's limit (``embedder.max_tokens``, else 254);
    ``tokenizer`` counts tokens (default: all-MiniLM-L6-v2's, shared and cached); ``embedder``
    is required by ``semantic`` and otherwise only sets the size limit. Invalid settings raise
    :class:`ConfigurationError` naming the setting. ``checkpoint`` is called between bounded
    steps of work; whatever it raises ends chunking (a deadline).
    """
    text = doc.text
    pieces = _chunk_pieces(
        text,
        strategy=strategy,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        tokenizer=tokenizer,
        embedder=embedder,
        breakpoint_percentile=breakpoint_percentile,
        checkpoint=checkpoint,
    )
    pages = PageMap(doc.page_spans())
    ocr = OcrPages(doc)
    return [
        Chunk(
            index=index,
            text=piece.prefix + text[piece.start : piece.end],
            start_char=piece.start,
            end_char=piece.end,
            token_count=piece.count,
            page_start=pages.page_of(piece.start),
            page_end=pages.page_of(piece.end - 1),
            **ocr.fields(piece.start, piece.end),
        )
        for index, piece in enumerate(pieces)
    ]
