"""Chunking: the promises every strategy keeps (property tests on random text), what makes each
strategy different, settings validation, page numbers, and speed on a 3 MB book."""

from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docworkers.errors import ConfigurationError
from docworkers.ingest.chunking import (
    CHUNKING_STRATEGIES,
    DEFAULT_STRATEGY,
    chunk_document,
    chunk_text,
    validate_chunking,
)
from docworkers.ingest.document import Chunk, Page, ParsedDocument
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.embedding_http import OpenAIEmbedder
from docworkers.ingest.tokenizer import MODEL_WINDOW, load_tokenizer, token_spans

COUNTING = load_tokenizer(for_counting=True)


@functools.cache
def embedder() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


def tokens(text: str) -> int:
    """Reference count: the tokenizer itself, not the chunker's cached counter."""
    return len(COUNTING.encode(text, add_special_tokens=False).ids)


def document(text: str, kind: str = "text") -> ParsedDocument:
    return ParsedDocument(filename="test.txt", kind=kind, pages=[Page(text)])


def assert_chunk_promises(
    doc: ParsedDocument, chunks: list[Chunk], chunk_size: int, chunk_overlap: int
) -> None:
    text = doc.text
    covered = bytearray(len(text))
    previous: Chunk | None = None
    for position, chunk in enumerate(chunks):
        assert chunk.index == position
        assert chunk.text == text[chunk.start_char : chunk.end_char]
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.token_count == tokens(chunk.text) <= chunk_size
        if previous is not None:
            assert chunk.start_char > previous.start_char  # document order
            assert chunk.end_char > previous.end_char
            if chunk.start_char < previous.end_char:
                shared = text[chunk.start_char : previous.end_char]
                assert tokens(shared) <= chunk_overlap, (shared, chunk_overlap)
        covered[chunk.start_char : chunk.end_char] = b"\1" * len(chunk.text)
        previous = chunk
    lost = [c for c, seen in zip(text, covered, strict=True) if not seen and not c.isspace()]
    assert not lost, f"characters in no chunk: {lost[:20]!r}"


# --- properties on random text --------------------------------------------------------------

_WORDS = st.one_of(
    st.sampled_from(
        ["wing", "the", "flow", "unbelievable", "aerothermoelastic", "Mr.", "e.g.", "NASA's"]
    ),
    st.sampled_from(
        ["東京", "你好。", "한국어", "각간갈감", "😀", "café", "naïve", "x\u200by", "a\x0bb"]
    ),
    st.text(st.characters(codec="utf-8", max_codepoint=0x2FFFF), max_size=12),
    st.text(st.sampled_from("QUJDabc0123+/"), min_size=40, max_size=300),  # a long token run
)
_SEPARATORS = st.sampled_from(
    [" ", " ", " ", "  ", "\n", "\n\n", ". ", "! ", "? ", ".\n\n", "\t", "\xa0", "\u3000", "# "]
)
_TEXT = st.lists(st.tuples(_WORDS, _SEPARATORS), max_size=120).map(
    lambda pairs: "".join(word + separator for word, separator in pairs)
)
_SIZES = st.sampled_from([(8, 0), (9, 3), (12, 1), (16, 5), (40, 10), (100, 0), (254, 30)])


@pytest.mark.parametrize("strategy", [s for s in CHUNKING_STRATEGIES if s != "semantic"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=_TEXT, sizes=_SIZES, markdown_heading=st.booleans())
def test_every_strategy_keeps_its_promises(
    strategy: str, text: str, sizes: tuple[int, int], markdown_heading: bool
) -> None:
    if markdown_heading:
        text = "# Title\n\n" + text
    chunk_size, chunk_overlap = sizes
    doc = document(text)
    chunks = chunk_document(
        doc, strategy=strategy, chunk_size=chunk_size, chunk_overlap=chunk_overlap
    )
    assert_chunk_promises(doc, chunks, chunk_size, chunk_overlap)


@settings(max_examples=15, deadline=None)
@given(text=_TEXT, sizes=st.sampled_from([(8, 2), (40, 10), (254, 0)]))
def test_semantic_strategy_keeps_the_promises(text: str, sizes: tuple[int, int]) -> None:
    chunk_size, chunk_overlap = sizes
    doc = document(text)
    chunks = chunk_document(
        doc,
        strategy="semantic",
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        embedder=embedder(),
    )
    assert_chunk_promises(doc, chunks, chunk_size, chunk_overlap)


# --- real documents -----------------------------------------------------------------------


@pytest.fixture
def wiki(corpus: Path) -> str:
    return (corpus / "text" / "norwich-city.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("strategy", CHUNKING_STRATEGIES)
def test_default_size_fills_but_never_overflows_the_model_window(wiki: str, strategy: str) -> None:
    doc = document(wiki[:6_000] if strategy == "semantic" else wiki[:15_000])
    chunks = chunk_document(doc, strategy=strategy, embedder=embedder())
    assert_chunk_promises(doc, chunks, 254, 0)
    for chunk in chunks:  # with [CLS] and [SEP] the model reads every token of the chunk
        assert len(COUNTING.encode(chunk.text).ids) <= MODEL_WINDOW
    mean = sum(chunk.token_count for chunk in chunks) / len(chunks)
    assert mean > (100 if strategy == "semantic" else 180)  # not needlessly small


def test_recursive_is_the_default_and_prefers_paragraph_breaks() -> None:
    assert DEFAULT_STRATEGY == "recursive"
    paragraphs = [
        f"Paragraph {i}. " + "The shock wave stands ahead of the body. " * 6 for i in range(8)
    ]
    text = "\n\n".join(paragraphs)
    chunks = chunk_document(document(text), chunk_size=120)
    for chunk in chunks:
        assert chunk.text.startswith("Paragraph")  # every chunk begins a paragraph
        assert chunk.text.endswith("body.")


@pytest.mark.parametrize("strategy", ["recursive", "markdown"])
def test_no_stub_chunks_a_title_joins_its_text(strategy: str) -> None:
    """A title beside a paragraph that fills a chunk on its own must not become a chunk."""
    paragraph = "The shock wave stands ahead of the blunt body at high Mach numbers. " * 9
    text = "Heat transfer near the stagnation point\n\n" + paragraph + "\n\nEnd."
    doc = document(text, kind="markdown" if strategy == "markdown" else "text")
    chunks = chunk_document(doc, strategy=strategy, chunk_size=120)
    assert_chunk_promises(doc, chunks, 120, 0)
    assert len(chunks) >= 2
    assert chunks[0].text.startswith("Heat transfer near the stagnation point")
    assert chunks[0].text != "Heat transfer near the stagnation point"  # not a stub alone
    assert all(chunk.token_count >= 120 // 4 for chunk in chunks), [
        chunk.text for chunk in chunks if chunk.token_count < 30
    ]
    assert chunks[-1].text.endswith("End.")


def test_markdown_keeps_sections_together() -> None:
    sections = [
        f"## Section {i}\n\n" + "Boundary layer transition depends on the Reynolds number. " * 6
        for i in range(6)
    ]
    text = "# Report\n\n" + "\n\n".join(sections)
    doc = document(text, kind="markdown")
    chunks = chunk_document(doc, strategy="markdown", chunk_size=100)
    assert_chunk_promises(doc, chunks, 100, 0)
    assert len(chunks) == 6
    for chunk in chunks:  # one section per chunk: two do not fit in 100 tokens
        assert chunk.text.startswith("#"), chunk.text[:40]
        assert chunk.text.count("## ") == 1
    # Without Markdown awareness headings end up at the end of the previous section's chunk.
    plain = chunk_document(doc, strategy="recursive", chunk_size=100)
    assert any(chunk.text.endswith(("Section 1", "Section 2")) for chunk in plain)


def war_and_peace(corpus: Path) -> str:
    """The first tenth of War and Peace (328 KB of example-docs' 3.2 MB book; the slice keeps
    the whole book's first 328,051 bytes, so offsets into it are offsets into the book)."""
    return (corpus / "text" / "book-war-and-peace-first-tenth.txt").read_text(encoding="utf-8")


def test_sentence_chunks_end_at_sentence_ends_and_overlap_whole_sentences(corpus: Path) -> None:
    book = war_and_peace(corpus)
    text = re.sub(r"\s+", " ", book[20_000:35_000])  # no blank lines: sentences only
    doc = document(text)
    chunks = chunk_document(doc, strategy="sentence", chunk_size=80, chunk_overlap=30)
    assert_chunk_promises(doc, chunks, 80, 30)
    ends = sum(1 for chunk in chunks[:-1] if re.search(r"[.!?][\"')\]]*$", chunk.text) is not None)
    assert ends >= 0.9 * (len(chunks) - 1)  # only over-long "sentences" are cut elsewhere
    overlapping = [(a, b) for a, b in itertools.pairwise(chunks) if b.start_char < a.end_char]
    assert len(overlapping) > len(chunks) / 2
    for previous, chunk in overlapping:
        if not previous.text.endswith((".", "!", "?", '"')):
            continue  # windows inside a sentence too long for one chunk
        # The shared part starts at a sentence start.
        assert re.search(r"[.!?][\"')\]]*\s+$", text[: chunk.start_char]) is not None


def test_token_keeps_words_whole_and_fixed_does_not(wiki: str) -> None:
    text = wiki[:20_000]
    doc = document(text)
    word_chunks = chunk_document(doc, strategy="token", chunk_size=50, chunk_overlap=10)
    fixed_chunks = chunk_document(doc, strategy="fixed", chunk_size=50, chunk_overlap=10)
    assert_chunk_promises(doc, word_chunks, 50, 10)
    assert_chunk_promises(doc, fixed_chunks, 50, 10)

    def cuts_a_word(chunk: Chunk) -> bool:
        before = text[chunk.start_char - 1] if chunk.start_char else " "
        after = text[chunk.end_char] if chunk.end_char < len(text) else " "
        return not before.isspace() or not after.isspace()

    assert not any(cuts_a_word(chunk) for chunk in word_chunks)
    assert sum(cuts_a_word(chunk) for chunk in fixed_chunks) > len(fixed_chunks) / 4
    # fixed: windows of chunk_size document tokens, each starting 40 tokens after the last; a
    # window or overlap that would tokenize longer on its own (cut inside a word) is trimmed.
    starts = token_spans(text).starts.tolist()
    assert sum(c.token_count == 50 for c in fixed_chunks) > 0.8 * len(fixed_chunks)
    steps = [
        starts.index(b.start_char) - starts.index(a.start_char)
        for a, b in itertools.pairwise(fixed_chunks)
        if a.start_char in starts and b.start_char in starts
    ]
    assert len(steps) > 0.8 * (len(fixed_chunks) - 1)
    assert all(40 <= step <= 50 for step in steps)
    assert sum(step == 40 for step in steps) > 0.8 * len(steps)


def test_semantic_cuts_where_the_topic_changes(corpus: Path) -> None:
    topics = [
        # Cranfield abstract 1: aerodynamics.
        "An experimental study of a wing in a propeller slipstream was made in order to "
        "determine the spanwise distribution of the lift increase due to slipstream. The "
        "results were intended as an evaluation basis for theoretical treatments. The span "
        "loading curves showed that part of the lift increment was due to a destalling effect. "
        "The effect is greater for a wing with flaps. Theories of the slipstream lift agree.",
        # War and Peace.
        "Anna Pavlovna smiled and promised to take Pierre in hand. She knew his father to be a "
        "connection of Prince Vasili's. The old aunt said a few words to Pierre about her health. "
        "Pierre was a massive, stout young man with close-cropped hair and spectacles. He wore "
        "light-colored breeches and a brown dress coat, as was the fashion.",
        # A 10-K filing.
        "Indicate by check mark whether the registrant has filed all reports required to be "
        "filed by the Securities Exchange Act. The aggregate market value of the common equity "
        "held by non-affiliates was computed by reference to the closing price. The number of "
        "shares outstanding of each class of common stock is stated. Portions of the proxy "
        "statement are incorporated by reference into Part III of this annual report.",
    ]
    text = "\n".join(topics)  # no blank lines: structure gives no hint
    doc = document(text)
    boundaries = [text.index(topic) for topic in topics[1:]]

    def mixes_topics(chunk: Chunk) -> bool:
        return any(chunk.start_char < b < chunk.end_char for b in boundaries)

    semantic = chunk_document(doc, strategy="semantic", chunk_size=254, embedder=embedder())
    assert_chunk_promises(doc, semantic, 254, 0)
    assert not any(mixes_topics(chunk) for chunk in semantic)
    assert len(semantic) <= 6  # cut at the topic changes, not at every sentence
    # Packing sentences by size alone does mix them: the check above can fail.
    packed = chunk_document(doc, strategy="sentence", chunk_size=254)
    assert any(mixes_topics(chunk) for chunk in packed)


def test_pages_of_chunks() -> None:
    pages = [
        Page(" ".join(f"page{number} word{i}." for i in range(60)), number) for number in (1, 2, 3)
    ]
    doc = ParsedDocument(filename="p.pdf", kind="pdf", pages=pages)
    chunks = chunk_document(doc, strategy="token", chunk_size=64)
    spans = doc.page_spans()
    for chunk in chunks:
        first = next(n for a, b, n in spans if a <= chunk.start_char < b)
        last = next(n for a, b, n in spans if a < chunk.end_char <= b)
        assert (chunk.page_start, chunk.page_end) == (first, last)
        assert f"page{chunk.page_start}" in chunk.text
    assert any(chunk.page_start != chunk.page_end for chunk in chunks)
    assert chunks[-1].page_end == 3
    unpaged = chunk_document(document("no pages here"))
    assert (unpaged[0].page_start, unpaged[0].page_end) == (None, None)


@pytest.mark.parametrize("strategy", CHUNKING_STRATEGIES)
@pytest.mark.parametrize("text", ["", "   \n\n\t  ", "\u3000"])
def test_documents_without_text_give_no_chunks(strategy: str, text: str) -> None:
    assert chunk_document(document(text), strategy=strategy, embedder=embedder()) == []


@pytest.mark.parametrize("strategy", CHUNKING_STRATEGIES)
def test_unbroken_runs_and_scripts_without_spaces(corpus: Path, strategy: str) -> None:
    udhr = (corpus / "text" / "UDHR_first_article_all.txt").read_text(encoding="utf-8")
    chinese = re.search(r"^\(Jinan\)\n(.+)$", udhr, re.MULTILINE)
    assert chinese is not None
    text = chinese.group(1) * 30 + "\n\n" + "QUJD" * 5000 + " end"  # CJK, then a base64 blob
    doc = document(text)
    chunks = chunk_document(doc, strategy=strategy, chunk_size=64, embedder=embedder())
    assert_chunk_promises(doc, chunks, 64, 0)


def test_a_book_sized_text_keeps_every_promise(corpus: Path) -> None:
    # Speed is the benchmarks' business (parse_speed, hostile_inputs); linear time is proven by
    # counting work in test_chunk_bounds.py.
    # Book-sized: the committed tenth of the book ten times over (3.3 MB of real prose, about
    # as long as the whole book and chunked at the same density).
    book = "\n\n".join([war_and_peace(corpus).strip()] * 10)
    assert len(book) > 3_000_000
    doc = document(book)
    chunks = chunk_document(doc)
    assert 3000 < len(chunks) < 4500
    assert max(chunk.token_count for chunk in chunks) <= 254
    sample = chunks[:: len(chunks) // 50]
    for chunk in sample:
        assert chunk.token_count == tokens(chunk.text)
        assert chunk.text == book[chunk.start_char : chunk.end_char]
    last_words = book.rstrip().split()[-1]
    assert chunks[-1].text.endswith(last_words)


# --- settings -------------------------------------------------------------------------------


def test_chunk_size_beyond_the_model_window_is_refused() -> None:
    doc = document("some text")
    for size in (255, 256, 512):
        with pytest.raises(ConfigurationError) as error:
            chunk_document(doc, chunk_size=size)
        assert error.value.field == "chunk_size"
        message = str(error.value)
        assert "254" in message and "256" in message and "silently lose text" in message
    assert chunk_document(doc, chunk_size=254)[0].text == "some text"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"strategy": "paragraph"}, "strategy"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 7}, "chunk_size"),
        ({"chunk_size": -5}, "chunk_size"),
        ({"chunk_size": 12.5}, "chunk_size"),
        ({"chunk_size": True}, "chunk_size"),
        ({"chunk_overlap": -1}, "chunk_overlap"),
        ({"chunk_size": 50, "chunk_overlap": 50}, "chunk_overlap"),
        ({"chunk_size": 50, "chunk_overlap": 80}, "chunk_overlap"),
        ({"strategy": "semantic"}, "embedder"),
        ({"strategy": "semantic", "breakpoint_percentile": 100.0}, "breakpoint_percentile"),
    ],
)
def test_invalid_settings_name_the_setting(options: dict[str, object], field: str) -> None:
    if "breakpoint_percentile" in options:
        options = {**options, "embedder": embedder()}
    with pytest.raises(ConfigurationError) as error:
        chunk_document(document("text"), **options)  # type: ignore[arg-type]
    assert error.value.field == field


def test_settings_can_be_validated_before_any_document() -> None:
    validate_chunking("token", 254, 253)
    with pytest.raises(ConfigurationError) as error:
        validate_chunking("token", 300, 0)
    assert error.value.field == "chunk_size"
    validate_chunking("token", 300, 0, max_tokens=512)  # another model's window
    with pytest.raises(ConfigurationError) as error:
        validate_chunking("tokens", 100, 0)
    assert error.value.field == "strategy"


def test_the_limit_follows_the_embedder() -> None:
    # A remote model with a 32-token window; non-semantic strategies never call it.
    with OpenAIEmbedder(
        base_url="http://127.0.0.1:9", model="tiny", dimension=384, max_tokens=32
    ) as remote:
        with pytest.raises(ConfigurationError, match="32"):
            chunk_text("text", chunk_size=64, embedder=remote)
        spans = chunk_text("wing " * 100, embedder=remote)
    assert max(count for _a, _b, count in spans) == 32


def test_tokenizer_must_count_without_truncation() -> None:
    truncating = load_tokenizer(for_counting=False)
    with pytest.raises(ConfigurationError) as error:
        chunk_document(document("text"), tokenizer=truncating)
    assert error.value.field == "tokenizer"
    chunks = chunk_document(document("wing " * 600), tokenizer=load_tokenizer(for_counting=True))
    assert sum(chunk.token_count for chunk in chunks) == 600
