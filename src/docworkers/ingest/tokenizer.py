"""The WordPiece tokenizer of all-MiniLM-L6-v2, shipped as package data, and token counting.

Token counts everywhere in docworkers (chunk sizes, overlaps, ``Chunk.token_count``) are tokens
of the *text* only: the ``[CLS]`` and ``[SEP]`` that the model adds around every input are not
counted. The model reads at most :data:`MODEL_WINDOW` (256) tokens including those two, so the
longest text it embeds without truncation is :data:`MAX_TEXT_TOKENS` = 254 tokens, and that is
the largest chunk size the chunker accepts. Counting text tokens keeps the arithmetic simple
(counts of adjacent pieces add up; an empty text has 0 tokens) at the price of that "window - 2".

The tokenizer file as distributed turns on truncation at 128 and fixed padding to 128, which
would silently cap counts: :func:`load_tokenizer` always sets both explicitly.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from importlib import resources

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

from docworkers.ingest.defaults import MAX_TEXT_TOKENS, MODEL_WINDOW, SPECIAL_TOKENS_PER_INPUT

__all__ = [
    "MAX_TEXT_TOKENS",
    "MODEL_WINDOW",
    "SPECIAL_TOKENS_PER_INPUT",
    "TokenCounter",
    "TokenSpans",
    "count_tokens",
    "default_counter",
    "load_tokenizer",
    "token_spans",
]

TOKENIZER_FILE = "all-MiniLM-L6-v2.tokenizer.json"
PAD_TOKEN = "[PAD]"
PAD_ID = 0

# BERT's normalizer removes control and format characters (\x0b, \u200b ...) and its
# pre-tokenizer splits on Unicode White_Space, never across it. So a text's token count is the
# sum of the counts of its runs between the characters below (White_Space minus the control
# characters that the normalizer deletes instead), and runs repeat a lot: counting each distinct
# run once is several times faster than tokenizing the text. Checked against the tokenizer by
# a property test.
_RUN = re.compile("[^\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
# Whitespace to Python's str.split() but control characters to the normalizer.
_DELETED_SPACES = re.compile("[\x0b\x0c\x1c-\x1f\x85]")
# Pieces of at most this many characters are tokenized together by token_spans(); boundaries
# fall on whitespace so they change no token.
_SEGMENT_CHARS = 8192
# WordPiece's max_input_chars_per_word: a longer word is one [UNK].
_MAX_WORD_CHARS = 100
# Longer runs are cut into words before counting, and only shorter pieces are cached (see
# TokenCounter.count): at most max_cached_runs of them, so the cache stays below ~75 MB.
_MAX_CACHED_RUN = _MAX_WORD_CHARS
# ASCII punctuation marks (each a word of BERT's pre-tokenizer) and the text between them.
_ASCII_WORDS = re.compile(r"[!-/:-@\[-`{-~]|[^!-/:-@\[-`{-~]+")
_SPACE_CODEPOINTS = np.array([c for c in range(0x3100) if chr(c).isspace()], dtype=np.uint32)
_WHITESPACE_CHARS = frozenset("\t\n\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)


@functools.cache
def _tokenizer_json() -> str:
    data = resources.files("docworkers.ingest").joinpath("data", TOKENIZER_FILE)
    return data.read_text(encoding="utf-8")


def load_tokenizer(for_counting: bool) -> Tokenizer:
    """A new all-MiniLM-L6-v2 tokenizer read from the package data.

    ``for_counting=True``: no truncation and no padding (chunking, counts). ``False``: the
    embedding setup, truncation at :data:`MODEL_WINDOW` (specials included) and padding of each
    ``encode_batch`` call to its longest sequence.
    """
    tokenizer = Tokenizer.from_str(_tokenizer_json())
    if for_counting:
        tokenizer.no_truncation()
        tokenizer.no_padding()
    else:
        tokenizer.enable_truncation(MODEL_WINDOW)
        tokenizer.enable_padding(pad_id=PAD_ID, pad_token=PAD_TOKEN)  # length=None: longest
    return tokenizer


class TokenCounter:
    """Counts text tokens (no specials) with a cache of distinct whitespace-separated runs.

    Exact: the same numbers as ``len(tokenizer.encode(text, add_special_tokens=False).ids)``.
    Safe to share between threads (a lost cache insert under a race only costs a recount).
    """

    def __init__(self, tokenizer: Tokenizer | None = None, *, max_cached_runs: int = 500_000):
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(for_counting=True)
        self._max_cached_runs = max_cached_runs
        self._cache: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        """Tokens in ``text``, excluding [CLS] and [SEP]."""
        # str.split() is the fast way, but it also splits on a few control characters that
        # the normalizer deletes instead (joining their neighbours).
        runs = text.split() if _DELETED_SPACES.search(text) is None else _RUN.findall(text)
        cache = self._cache
        try:
            return sum(map(cache.__getitem__, runs))
        except KeyError:
            pass
        # A long run (a URL, a base64 blob, a hostile text) is cut into the tokenizer's words
        # first: ASCII punctuation is always a word of its own, so the counts add up, and the
        # words repeat even when the pieces of text around them (as a splitter tries them) do not.
        pieces: list[str] = []
        for run in runs:
            if len(run) > _MAX_CACHED_RUN and run not in cache:
                pieces.extend(_ASCII_WORDS.findall(run))
            else:
                pieces.append(run)
        total = 0
        unknown: list[str] = []
        for piece in pieces:
            found = cache.get(piece)
            if found is not None:
                total += found
            elif len(piece) > _MAX_WORD_CHARS and piece.isascii() and piece.isalnum():
                total += 1  # one [UNK], whatever its length: not worth tokenizing
            else:
                unknown.append(piece)
        return total + self._learn(unknown) if unknown else total

    def _learn(self, pieces: list[str]) -> int:
        """Tokens in ``pieces``, caching the count of each short one. Long pieces rarely repeat
        and would fill the cache with big strings."""
        distinct = list(dict.fromkeys(pieces))
        encodings = self.tokenizer.encode_batch_fast(distinct, add_special_tokens=False)
        counts = {piece: len(e.ids) for piece, e in zip(distinct, encodings, strict=True)}
        kept = {piece: n for piece, n in counts.items() if len(piece) <= _MAX_CACHED_RUN}
        with self._lock:
            if len(self._cache) + len(kept) > self._max_cached_runs:
                self._cache = {}  # bounded memory; the next texts refill it
            self._cache.update(kept)
        return sum(counts[piece] for piece in pieces)


@functools.cache
def default_counter() -> TokenCounter:
    """The process-wide counter for all-MiniLM-L6-v2 (created on first use)."""
    return TokenCounter()


def count_tokens(text: str) -> int:
    """Tokens of all-MiniLM-L6-v2 in ``text``, excluding the [CLS]/[SEP] the model adds."""
    return default_counter().count(text)


@dataclass(frozen=True, slots=True)
class TokenSpans:
    """Every token of a text, in order: character span and where words begin.

    ``word_start[i]``: token ``i`` begins a word of the pre-tokenizer (punctuation marks are
    words of their own) and a character, so cutting before it cannot change how either side
    tokenizes.
    ``space_before[i]``: whitespace separates token ``i`` from the previous token.
    ``char_start[i]``: token ``i`` begins a new character; False when one character yields
    several tokens (a Hangul syllable decomposes into jamo), so a cut there would split it.
    """

    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    word_start: NDArray[np.bool_]
    space_before: NDArray[np.bool_]
    char_start: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.starts)


def _segments(text: str) -> list[tuple[int, int]]:
    """Cut ``text`` into pieces of about _SEGMENT_CHARS, each cut on a whitespace character."""
    pieces: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > _SEGMENT_CHARS:
        cut = start + _SEGMENT_CHARS
        while cut > start and text[cut] not in _WHITESPACE_CHARS:
            cut -= 1
        if cut == start:  # one enormous run: find the next whitespace after the window instead
            cut = start + _SEGMENT_CHARS
            while cut < len(text) and text[cut] not in _WHITESPACE_CHARS:
                cut += 1
            if cut == len(text):
                break
        pieces.append((start, cut))
        start = cut
    pieces.append((start, len(text)))
    return pieces


def token_spans(text: str, tokenizer: Tokenizer | None = None) -> TokenSpans:
    """Tokenize ``text`` (without specials) and return each token's character span.

    The text is tokenized in whitespace-separated segments so that ``encode_batch`` can use
    every core; that changes no token because the tokenizer never merges across whitespace.
    """
    tok = tokenizer if tokenizer is not None else default_counter().tokenizer
    segments = _segments(text)
    encodings = tok.encode_batch([text[a:b] for a, b in segments], add_special_tokens=False)
    starts: list[int] = []
    ends: list[int] = []
    word_start: list[bool] = []
    for (offset, _end), encoding in zip(segments, encodings, strict=True):
        previous_word: int | None = None
        for (a, b), word in zip(encoding.offsets, encoding.word_ids, strict=True):
            starts.append(offset + a)
            ends.append(offset + b)
            word_start.append(word is None or word != previous_word)
            previous_word = word
    start_array = np.asarray(starts, dtype=np.int64)
    end_array = np.asarray(ends, dtype=np.int64)
    space_before = np.ones(len(starts), dtype=np.bool_)
    char_start = np.ones(len(starts), dtype=np.bool_)
    if len(starts) > 1:
        # Whitespace characters before each offset, to see which gaps hold whitespace (gaps can
        # also be characters the normalizer deletes, inside a word).
        codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        spaces = np.concatenate([[0], np.cumsum(np.isin(codepoints, _SPACE_CODEPOINTS))])
        space_before[1:] = spaces[start_array[1:]] > spaces[end_array[:-1]]
        char_start[1:] = start_array[1:] >= end_array[:-1]
    return TokenSpans(
        starts=start_array,
        ends=end_array,
        word_start=np.asarray(word_start, dtype=np.bool_) & char_start,
        space_before=space_before,
        char_start=char_start,
    )
