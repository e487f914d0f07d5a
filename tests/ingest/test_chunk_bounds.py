"""Hostile lengths: every chunk is bounded in characters as well as tokens, chunking is linear in
the text's length, and a checkpoint can stop it (issue 11).

Linearity is shown by counting work, not by timing it: the splitter of ``recursive`` and
``markdown`` (Rust, a black box) is superlinear in the text it is given, so what must hold is
that no call gives it more than one segment and that every character is given to it once; the
tokenizer's work is counted directly, for n and 2n characters.
"""

from __future__ import annotations

import base64
import functools
import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import semantic_text_splitter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import docworkers.ingest.chunking.segments as segmenting
from docworkers.ingest.chunking import CHUNKING_STRATEGIES, chunk_document, chunk_text
from docworkers.ingest.chunking.segments import SEGMENT_CHARS, segments
from docworkers.ingest.chunking.spans import max_chunk_chars
from docworkers.ingest.defaults import MAX_CHARS_PER_TOKEN, MAX_CHUNK_CHARS, MAX_TEXT_TOKENS
from docworkers.ingest.document import Chunk, Page, ParsedDocument
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.tokenizer import TokenCounter, load_tokenizer

COUNTING = load_tokenizer(for_counting=True)
WORDS = ("the", "shock", "wave", "stands", "ahead", "of", "the", "blunt", "body", "at", "high",
         "mach", "numbers")


@functools.cache
def model() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


def tokens(text: str) -> int:
    return len(COUNTING.encode(text, add_special_tokens=False).ids)


def document(text: str) -> ParsedDocument:
    return ParsedDocument(filename="hostile.txt", kind="text", pages=[Page(text)])


def assert_bounded_chunks(text: str, chunks: Sequence[Chunk], chunk_size: int,
                          chunk_overlap: int) -> None:
    """The promises of docworkers.ingest.chunking, the character bound first."""
    limit = chunk_size * MAX_CHARS_PER_TOKEN
    covered = bytearray(len(text))
    previous: Chunk | None = None
    for chunk in chunks:
        assert len(chunk.text) <= limit, (len(chunk.text), limit)
        assert chunk.text == text[chunk.start_char:chunk.end_char] == chunk.text.strip()
        assert chunk.token_count == tokens(chunk.text) <= chunk_size
        if previous is not None:
            assert chunk.start_char > previous.start_char
            assert chunk.end_char > previous.end_char
            if chunk.start_char < previous.end_char:
                assert tokens(text[chunk.start_char:previous.end_char]) <= chunk_overlap
        covered[chunk.start_char:chunk.end_char] = b"\1" * len(chunk.text)
        previous = chunk
    lost = [c for c, seen in zip(text, covered, strict=True) if not seen and not c.isspace()]
    assert not lost, f"characters in no chunk: {lost[:20]!r}"


def test_the_bound_derives_from_the_token_window() -> None:
    assert max_chunk_chars(MAX_TEXT_TOKENS) == MAX_CHUNK_CHARS == 254 * MAX_CHARS_PER_TOKEN
    assert max_chunk_chars(8) == 8 * MAX_CHARS_PER_TOKEN


# --- the character bound, for any input -------------------------------------------------------

_RUNS = st.one_of(
    st.integers(1, 3000).map(lambda n: "x" * n),  # one [UNK] token, however long
    st.integers(1, 2000).map(lambda n: base64.b64encode(bytes(range(256)) * 8).decode()[:n]),
    st.integers(1, 600).map(lambda n: "a" + "\u200b" * n + "b"),  # deleted by the normalizer
    st.integers(1, 300).map(lambda n: "e\u0301" * n),  # combining accents, stripped
    st.integers(1, 500).map(lambda n: " " * n),  # whitespace-heavy
    st.sampled_from(["wing", "the", "Mr.", "東京", "한국어", "😀", "naïve", "a\x0bb", "\x85"]),
    st.text(st.characters(codec="utf-8", max_codepoint=0x2FFFF), max_size=12),
)
_SEPARATORS = st.sampled_from([" ", "\n", "\n\n", ". ", "\t", "\u3000", "# ", ""])
_HOSTILE = st.lists(st.tuples(_RUNS, _SEPARATORS), max_size=30).map(
    lambda pairs: "".join(run + separator for run, separator in pairs)
)
_SIZES = st.sampled_from([(8, 0), (9, 3), (16, 5), (40, 10), (254, 30)])


@pytest.fixture
def small_segments() -> Iterator[None]:
    """Segments of 700 characters, so that random texts of a few thousand cross several."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segmenting, "SEGMENT_CHARS", 700)
        yield


@pytest.mark.parametrize("strategy", [s for s in CHUNKING_STRATEGIES if s != "semantic"])
@pytest.mark.parametrize("segmented", [False, True])
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=_HOSTILE, sizes=_SIZES)
def test_no_chunk_exceeds_the_character_bound(strategy: str, segmented: bool, text: str,
                                              sizes: tuple[int, int]) -> None:
    chunk_size, chunk_overlap = sizes
    with pytest.MonkeyPatch.context() as patch:
        if segmented:
            patch.setattr(segmenting, "SEGMENT_CHARS", 700)
        chunks = chunk_document(document(text), strategy=strategy, chunk_size=chunk_size,
                                chunk_overlap=chunk_overlap)
    assert_bounded_chunks(text, chunks, chunk_size, chunk_overlap)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=_HOSTILE, sizes=st.sampled_from([(8, 2), (40, 10)]))
def test_semantic_chunks_are_bounded_too(small_segments: None, text: str,
                                         sizes: tuple[int, int]) -> None:
    chunk_size, chunk_overlap = sizes
    chunks = chunk_document(document(text), strategy="semantic", chunk_size=chunk_size,
                            chunk_overlap=chunk_overlap, embedder=model())
    assert_bounded_chunks(text, chunks, chunk_size, chunk_overlap)


@pytest.mark.parametrize("strategy", CHUNKING_STRATEGIES)
def test_a_million_characters_without_a_space_are_many_chunks(strategy: str) -> None:
    """The fault run's case: ``chunk_text('x' * 10**6)`` was one chunk of 1,000,000 characters."""
    text = "x" * 10**6
    spans = chunk_text(text, strategy=strategy, embedder=model())
    assert max(end - start for start, end, _count in spans) <= MAX_CHUNK_CHARS
    assert len(spans) >= 10**6 // MAX_CHUNK_CHARS
    assert sum(end - start for start, end, _count in spans) >= 10**6  # all of it
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(spans))


def test_real_text_never_meets_the_bound() -> None:
    """Prose at 4-5 characters per token fills chunks by tokens, as before the bound."""
    rng = random.Random(3)
    text = ". ".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(400))
    spans = chunk_text(text)
    assert max(count for _s, _e, count in spans[:-1]) > 240
    assert max(end - start for start, end, _c in spans) < MAX_CHUNK_CHARS / 2


# --- segments ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.sampled_from("ab .\n。\u0301x"), max_size=400),
       limit=st.integers(2, 60))
def test_segments_cover_the_text_in_bounded_pieces(text: str, limit: int) -> None:
    pieces = list(segments(text, limit))
    assert "".join(text[a:b] for a, b in pieces) == text
    assert all(0 < b - a <= limit for a, b in pieces)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))


def test_segments_cut_at_the_strongest_boundary() -> None:
    para = "A sentence here. Another one follows it.\n" * 30
    text = (para + "\n") * 200
    for _a, b in segments(text, 4000):
        if b < len(text):
            assert text[b - 1:b + 1] == "\n\n", repr(text[b - 5:b + 5])  # a paragraph break
    line = "Sentence one is here. " * 2000
    assert all(line[b - 1:b + 1] == ". " for _a, b in list(segments(line, 4000))[:-1])
    assert [b - a for a, b in segments("x" * 10_000, 4000)] == [4000, 4000, 2000]


# --- linear work --------------------------------------------------------------------------------


class _CountingTokenizer:
    """The real tokenizer, counting the characters it is given (every encode method)."""

    def __init__(self) -> None:
        self.inner = load_tokenizer(for_counting=True)
        self.chars = 0

    def encode(self, text: str, *args: Any, **kwargs: Any) -> Any:
        self.chars += len(text)
        return self.inner.encode(text, *args, **kwargs)

    def encode_batch(self, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        self.chars += sum(map(len, texts))
        return self.inner.encode_batch(texts, *args, **kwargs)

    def encode_batch_fast(self, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        self.chars += sum(map(len, texts))
        return self.inner.encode_batch_fast(texts, *args, **kwargs)


class _Work:
    """What a chunk_text call cost: characters given to the tokenizer, to the token counter,
    and to each call of the Rust splitter."""

    def __init__(self) -> None:
        self.tokenizer = _CountingTokenizer()
        self.counted = 0
        self.splitter_inputs: list[int] = []
        work = self

        class Counter(TokenCounter):
            def count(self, text: str) -> int:
                work.counted += len(text)
                return super().count(text)

        self.counter = Counter(self.tokenizer)  # type: ignore[arg-type]


@pytest.fixture
def spied_splitters(monkeypatch: pytest.MonkeyPatch) -> list[_Work]:
    """The real splitters, recording the length of every text they are asked to chunk."""
    current: list[_Work] = []

    def spy(real: Any) -> Any:
        class Spy:
            @classmethod
            def from_callback(cls, *args: Any, **kwargs: Any) -> Any:
                inner = real.from_callback(*args, **kwargs)

                class Recording:
                    def chunk_indices(self, text: str) -> Any:
                        current[-1].splitter_inputs.append(len(text))
                        return inner.chunk_indices(text)

                return Recording()

        return Spy

    for name in ("TextSplitter", "MarkdownSplitter"):
        monkeypatch.setattr(semantic_text_splitter, name,
                            spy(getattr(semantic_text_splitter, name)))
    return current


def _one_line(chars: int) -> str:
    """Words without a single line break or sentence end: the input that was quadratic."""
    rng = random.Random(chars)
    return " ".join(rng.choice(WORDS) for _ in range(chars // 4))[:chars]


@pytest.mark.parametrize("strategy", [s for s in CHUNKING_STRATEGIES if s != "semantic"])
@pytest.mark.parametrize("kind", ["words", "run"])
def test_chunking_work_is_linear(strategy: str, kind: str,
                                 spied_splitters: list[_Work]) -> None:
    n = 3 * SEGMENT_CHARS + 1000
    costs = []
    for length in (n, 2 * n):
        text = _one_line(length) if kind == "words" else "x" * length
        work = _Work()
        spied_splitters.append(work)
        spans = chunk_text(text, strategy=strategy, tokenizer=work.counter)
        assert max(end - start for start, end, _c in spans) <= MAX_CHUNK_CHARS
        if strategy in ("recursive", "markdown"):
            # The splitter (superlinear in its input) sees every character once, one segment
            # at a time: before, it was given the whole text in one call.
            assert max(work.splitter_inputs) <= SEGMENT_CHARS
            assert sum(work.splitter_inputs) == length
        else:
            assert work.splitter_inputs == []
        costs.append((work.tokenizer.chars, work.counted))
    (tokenized, counted), (tokenized2, counted2) = costs
    assert tokenized2 <= 2.2 * tokenized + 10_000, costs
    assert counted2 <= 2.2 * counted + 10_000, costs


def test_checkpoint_is_called_per_segment_and_stops_chunking() -> None:
    text = _one_line(5 * SEGMENT_CHARS)
    calls: list[int] = []

    def checkpoint() -> None:
        calls.append(1)

    chunk_text(text, checkpoint=checkpoint)
    assert len(calls) >= 5

    class Deadline(Exception):
        pass

    stopped: list[int] = []

    def expire_at_third() -> None:
        stopped.append(1)
        if len(stopped) == 3:
            raise Deadline

    for strategy in CHUNKING_STRATEGIES:
        stopped.clear()
        with pytest.raises(Deadline):
            chunk_text(text, strategy=strategy, embedder=model(), checkpoint=expire_at_third)
        assert len(stopped) == 3  # nothing ran after the checkpoint raised
