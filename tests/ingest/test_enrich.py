"""Enrichment: metadata, language, YAKE keywords and template questions on corpus text, and the
LLM enricher against a small local HTTP server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_http import LocalHTTPServer, Request

from docworkers.errors import ConfigurationError, EnrichmentError
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.enrich import (
    Enricher,
    LocalEnricher,
    count_words,
    detect_language,
    extract_document_metadata,
    extract_keywords,
    generate_questions,
)
from docworkers.ingest.enrich_llm import OpenAIChatEnricher

# --- corpus helpers --------------------------------------------------------------------------


def udhr(corpus: Path) -> dict[str, str]:
    """{language name: first article} from the UDHR file (name line, text lines, blank line)."""
    text = (corpus / "text" / "UDHR_first_article_all.txt").read_text(encoding="utf-8")
    entries = {}
    for block in text.split("\n\n")[4:]:
        name, _, body = block.strip().partition("\n")
        if body.strip():
            entries[name.strip()] = body.strip()
    return entries


def war_and_peace_chunks(corpus: Path, count: int, words: int = 190) -> list[str]:
    """~256-token chunks (190 English words) of War and Peace, from its first chapters (the
    committed first tenth of the book: up to 300 chunks)."""
    text = (corpus / "text" / "book-war-and-peace-first-tenth.txt").read_text(encoding="utf-8")
    tokens = text.split()
    return [" ".join(tokens[i : i + words]) for i in range(0, count * words, words)]


def text_doc(filename: str, text: str, **metadata: Any) -> ParsedDocument:
    return ParsedDocument(filename=filename, kind="text", pages=[Page(text)], metadata=metadata)


# --- language --------------------------------------------------------------------------------

EXPECTED_LANGUAGES = {
    "English": "en", "German, Standard (1996)": "de", "French": "fr", "Spanish": "es",
    "Italian": "it", "Dutch": "nl", "Portuguese (Portugal)": "pt", "Portuguese (Brazil)": "pt",
    "Arabic, Standard": "ar", "Hebrew": "he", "Chinese, Mandarin (Simplified)": "zh",
    "Chinese, Mandarin (Traditional)": "zh", "Japanese": "ja", "Korean": "ko", "Russian": "ru",
    "Ukrainian": "uk", "Belarusan": "be", "Bulgarian": "bg", "Serbian (Cyrillic)": "sr",
    "Greek (monotonic)": "el", "Thai": "th",
    # Latin script, but none of the seven scored languages:
    "Finnish": "und", "Hungarian": "und", "Turkish": "und", "Indonesian": "und",
    "Latin": "und", "Swahili": "und", "Czech": "und", "Polish": "und", "Catalan-Valencian-Balear":
    "und", "Galician": "und", "Esperanto": "und", "Vietnamese": "und", "Danish": "und",
}  # fmt: skip


def test_languages_of_the_udhr_first_article(corpus: Path) -> None:
    articles = udhr(corpus)
    detected = {name: detect_language(articles[name]) for name in EXPECTED_LANGUAGES}
    assert detected == EXPECTED_LANGUAGES


def test_only_close_relatives_are_mistaken_for_a_scored_language(corpus: Path) -> None:
    """Over ~500 languages, a Latin-script code goes to that language or a close relative."""
    allowed = {
        "en": {"English", "Scots", "Pidgin, Nigerian"},
        "de": {"German, Standard (1901)", "German, Standard (1996)"},
        "fr": {"French"},
        "es": {"Spanish", "Spanish (resolution)", "Asturian"},
        "it": {"Italian", "Friulian"},
        "nl": {"Dutch", "Afrikaans"},
        "pt": {"Portuguese (Brazil)", "Portuguese (Portugal)"},
    }
    found: dict[str, set[str]] = {code: set() for code in allowed}
    for name, article in udhr(corpus).items():
        code = detect_language(article)
        if code in found:
            found[code].add(name)
    assert found == allowed


def test_language_of_empty_or_wordless_text_is_undetermined() -> None:
    assert detect_language("") == "und"
    assert detect_language("12 345 -- 6.7 %") == "und"
    assert detect_language("können äöüß") == "und"  # too little to tell


# --- document metadata -----------------------------------------------------------------------


def test_metadata_of_a_plain_text_book(corpus: Path) -> None:
    text = (corpus / "text" / "book-war-and-peace-1p.txt").read_text(encoding="utf-8")
    meta = extract_document_metadata(text_doc("war-and-peace.txt", text))

    assert meta["title"] == "CHAPTER I"  # the first short line
    assert meta["language"] == "en"
    assert (meta["author"], meta["created"], meta["modified"], meta["page_count"]) == (
        None,
        None,
        None,
        None,
    )
    assert meta["char_count"] == len(text)
    assert abs(meta["word_count"] - len(re.findall(r"[A-Za-z0-9]+", text))) <= 0.05 * len(
        text.split()
    )


def test_declared_metadata_wins_but_placeholder_titles_do_not(corpus: Path) -> None:
    article = udhr(corpus)["French"]
    pages = [Page(f"# Déclaration universelle\n\n{article}", 1), Page(article, 2)]
    declared = {
        "title": "  Universal   Declaration ",
        "author": "United Nations",
        "created": "1948-12-10T00:00:00",
        "modified": "",
        "page_count": 9,
        "language": "de-CH",
    }
    doc = ParsedDocument("udhr.pdf", "pdf", pages, metadata=declared)
    meta = extract_document_metadata(doc)
    assert meta["title"] == "Universal Declaration"
    assert (meta["author"], meta["created"], meta["modified"]) == (
        "United Nations",
        "1948-12-10T00:00:00",
        None,
    )
    assert meta["page_count"] == 9
    assert meta["language"] == "fr"  # the text says French, whatever the file declares

    doc.metadata = {"title": "Untitled"}
    meta = extract_document_metadata(doc)
    assert meta["title"] == "Déclaration universelle"  # the first "# " heading
    assert meta["page_count"] == 2  # numbered pages


def test_title_falls_back_to_a_short_line_then_the_filename(corpus: Path) -> None:
    codeblock = (corpus / "text" / "codeblock.md").read_text(encoding="utf-8")
    assert extract_document_metadata(text_doc("c.md", codeblock))["title"] == "HTML Example"
    long_line = udhr(corpus)["English"] * 3
    assert extract_document_metadata(text_doc("dir/udhr-en.txt", long_line))["title"] == "udhr-en"


def test_declared_language_is_used_only_when_detection_fails() -> None:
    assert (
        extract_document_metadata(text_doc("n.txt", "4711 0815", language="de-DE"))["language"]
        == "de"
    )
    assert extract_document_metadata(text_doc("n.txt", "4711", language="bogus"))["language"] == (
        "und"
    )


def test_cjk_characters_count_as_words(corpus: Path) -> None:
    japanese = udhr(corpus)["Japanese"]
    cjk = len(re.findall(r"[\u3040-\u30ff\u4e00-\u9fff]", japanese))
    assert count_words(japanese) == cjk
    assert count_words("don't stop-words, 42 times") == 4


# --- keywords --------------------------------------------------------------------------------


def test_keywords_are_relevant(corpus: Path) -> None:
    norwich = (corpus / "text" / "norwich-city.txt").read_text(encoding="utf-8")
    keywords = extract_keywords(norwich, "en", top_n=8)
    assert len(keywords) == 8
    assert "Norwich City" in keywords
    assert any("Roberts" in k for k in keywords)

    first_page = (corpus / "text" / "book-war-and-peace-1p.txt").read_text(encoding="utf-8")
    keywords = extract_keywords(first_page, "en", top_n=5)
    assert any("Anna Pavlovna" in k for k in keywords)

    german = udhr(corpus)["German, Standard (1996)"]
    keywords = extract_keywords(german, "de", top_n=5)
    assert keywords and not {k.casefold() for k in keywords} & {"und", "sind", "mit", "im"}


def test_keywords_are_unique_and_not_contained_in_each_other(corpus: Path) -> None:
    for chunk in war_and_peace_chunks(corpus, 10):
        keywords = extract_keywords(chunk, "en", top_n=6)
        folded = [f" {k.casefold()} " for k in keywords]
        assert len(set(folded)) == len(folded)
        for i, a in enumerate(folded):
            assert not any(a in b for j, b in enumerate(folded) if i != j), keywords


_KEYWORDS_IN_SUBPROCESS = """
import json, sys
from docworkers.ingest.enrich import extract_keywords
chunks = json.load(sys.stdin)
print(json.dumps([extract_keywords(c, "en", top_n=5) for c in chunks]))
"""


def test_keywords_are_deterministic_across_processes(corpus: Path) -> None:
    """String hashing differs per process; the keywords must not."""
    chunks = war_and_peace_chunks(corpus, 6)
    here = [extract_keywords(c, "en", top_n=5) for c in chunks]
    assert here == [extract_keywords(c, "en", top_n=5) for c in chunks]
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", _KEYWORDS_IN_SUBPROCESS],
            input=json.dumps(chunks),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=60,
            check=True,
        )
        assert json.loads(result.stdout) == here


def test_keywords_edge_cases(corpus: Path) -> None:
    assert extract_keywords(udhr(corpus)["Chinese, Mandarin (Simplified)"], "zh") == []
    assert extract_keywords("plenty of words here", "en", top_n=0) == []
    assert extract_keywords("   ", "en") == []
    assert extract_keywords("Das Auto fährt schnell nach Berlin.", "xx", top_n=2)  # no stop list
    with pytest.raises(ConfigurationError, match="top_n"):
        extract_keywords("text", "en", top_n=-1)


def test_keywords_come_from_each_chunk_of_a_real_book(corpus: Path) -> None:
    # Milliseconds per chunk is a benchmark figure, not a test: here, each chunk's keywords.
    chunks = war_and_peace_chunks(corpus, 30)
    for chunk in chunks:
        keywords = extract_keywords(chunk, "en")
        assert keywords, chunk[:80]
        lowered = chunk.lower()
        assert all(any(word.lower() in lowered for word in keyword.split()) for keyword in keywords)


# --- questions -------------------------------------------------------------------------------

DEFINITIONS = (
    "A vector database is a system that stores embeddings and answers similarity queries. "
    "Chroma is an open-source vector database. It stores documents and metadata in "
    "collections. The HNSW index refers to a graph used to find nearest neighbours quickly. "
    "This is not a definition."
)


def test_definitional_sentences_become_what_is_questions() -> None:
    questions = generate_questions(DEFINITIONS, 10, ["vector database", "collections", "Chroma"])
    assert questions[:3] == [
        "What is a vector database?",
        "What is Chroma?",
        "What is the HNSW index?",
    ]
    # keyphrases already defined are not asked about again
    assert "What does the document say about collections?" in questions
    assert "What does the document say about Chroma?" not in questions
    assert "How is vector database related to Chroma?" in questions  # they share a sentence
    assert "How is vector database related to collections?" not in questions  # they do not
    assert not any(q.startswith("What is this") for q in questions)


@pytest.mark.parametrize("n", range(11))
def test_questions_are_at_most_n_and_unique(n: int, corpus: Path) -> None:
    for chunk in [*war_and_peace_chunks(corpus, 3), DEFINITIONS]:
        questions = generate_questions(chunk, n)
        assert len(questions) <= n
        assert len({q.casefold() for q in questions}) == len(questions)
        assert all(q.endswith("?") for q in questions)
        if n:
            assert questions, chunk[:80]
    assert generate_questions(DEFINITIONS, 5, ["a", "A", " a "]) == [
        "What is a vector database?",
        "What is Chroma?",
        "What is the HNSW index?",
        "What does the document say about a?",
    ]


def test_questions_are_deterministic_and_in_the_chunk_language(corpus: Path) -> None:
    german = udhr(corpus)["German, Standard (1996)"]
    first = generate_questions(german, 4, language="de")
    assert first == generate_questions(german, 4, language="de")
    assert first and all(q.startswith("Was sagt das Dokument über ") for q in first)
    assert generate_questions("", 3) == []
    for bad in (-1, 11):
        with pytest.raises(ConfigurationError, match="between 0 and 10"):
            generate_questions(DEFINITIONS, bad)


def test_local_enricher_is_an_enricher(corpus: Path) -> None:
    enricher: Enricher = LocalEnricher(max_ngram=2)
    text = (corpus / "text" / "norwich-city.txt").read_text(encoding="utf-8")
    assert enricher.document_metadata(text_doc("n.txt", text))["language"] == "en"
    keywords = enricher.keywords(text[:1500], "en", 4)
    assert len(keywords) == 4 and all(len(k.split()) <= 2 for k in keywords)
    assert len(enricher.questions(text[:1500], 3, keywords)) == 3
    with pytest.raises(ConfigurationError, match="max_ngram"):
        LocalEnricher(max_ngram=0)


# --- LLM enricher ----------------------------------------------------------------------------
# The one fake in these tests: a hosted LLM is a boundary we do not own, so a real local HTTP
# server plays it, answering with canned chat completions and recording each request.


class _FakeLLM(LocalHTTPServer):
    """Answers each chat completion with the next queued reply (500 when none is left)."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, str]] = []  # (status, message content or raw body)
        super().__init__(self._answer)

    def reply(self, content: Any, status: int = 200) -> None:
        text = content if isinstance(content, str) else json.dumps(content)
        self.replies.append((status, text))

    def _answer(self, request: Request) -> tuple[int, Any]:
        status, content = self.replies.pop(0) if self.replies else (500, "no reply")
        if status == 200:
            return 200, {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return status, content


@pytest.fixture
def llm() -> Iterator[tuple[_FakeLLM, str]]:
    with _FakeLLM() as fake:
        yield fake, f"{fake.url}/v1"


def test_llm_enricher_title_keywords_and_questions(llm: tuple[_FakeLLM, str], corpus: Path) -> None:
    fake, base_url = llm
    fake.reply({"title": " The Universal Declaration of Human Rights "})
    listing = '{"keywords": ["1. dignity", "- rights", "Dignity", 7, "reason", "conscience"]}'
    fake.reply(f"Sure! Here you go:\n```json\n{listing}\n```")
    fake.reply(["What rights do all humans have?", "Are humans born free?", "extra", "more"])

    text = udhr(corpus)["English"]
    enricher: Enricher
    with OpenAIChatEnricher(base_url=base_url, model="tiny", api_key="sk-test") as enricher:
        meta = enricher.document_metadata(text_doc("udhr.txt", text))
        keywords = enricher.keywords(text, "en", top_n=3)
        questions = enricher.questions(text, 2, keywords)

    assert meta["title"] == "The Universal Declaration of Human Rights"
    assert meta["language"] == "en" and meta["char_count"] == len(text)  # local fields kept
    assert keywords == ["dignity", "rights", "reason"]
    assert questions == ["What rights do all humans have?", "Are humans born free?"]

    assert [r.path for r in fake.requests] == ["/v1/chat/completions"] * 3
    assert all(r.headers["Authorization"] == "Bearer sk-test" for r in fake.requests)
    first = fake.requests[0].body
    assert first["model"] == "tiny" and first["temperature"] == 0.0
    assert first["response_format"] == {"type": "json_object"}
    assert text in first["messages"][1]["content"] and "udhr.txt" in first["messages"][1]["content"]
    assert "dignity, rights, reason" in fake.requests[2].body["messages"][1]["content"]


def test_llm_enricher_failures_are_retryable_enrichment_errors(
    llm: tuple[_FakeLLM, str],
) -> None:
    fake, base_url = llm
    enricher = OpenAIChatEnricher(base_url=base_url, model="tiny", api_key="sk-secret")
    try:
        fake.reply("I cannot help with that.")
        with pytest.raises(EnrichmentError, match="not JSON") as caught:
            enricher.keywords("some text", "en")
        assert caught.value.retryable and caught.value.code == "enrichment"
        assert base_url in str(caught.value) and "'tiny'" in str(caught.value)
        assert "sk-secret" not in str(caught.value)

        fake.reply('{"error": "overloaded"}', status=503)
        with pytest.raises(EnrichmentError, match="HTTP 503"):
            enricher.questions("some text", 3, [])

        fake.reply({"summary": "no title here"})
        with pytest.raises(EnrichmentError, match="no title"):
            enricher.document_metadata(text_doc("a.txt", "some text"))

        fake.reply({"keywords": "not a list"})
        with pytest.raises(EnrichmentError, match="expected a list"):
            enricher.keywords("some text", "en")

        requests = len(fake.requests)
        assert enricher.questions("some text", 0, []) == []
        assert enricher.keywords("  ", "en") == []
        assert len(fake.requests) == requests  # nothing to ask, no request
    finally:
        enricher.close()


def test_llm_enricher_without_json_mode_and_unreachable(llm: tuple[_FakeLLM, str]) -> None:
    fake, base_url = llm
    fake.reply({"questions": ["Q?"]})
    with OpenAIChatEnricher(base_url=base_url, model="m", json_mode=False) as enricher:
        assert enricher.questions("text", 1, []) == ["Q?"]
    assert "response_format" not in fake.requests[0].body
    assert "Authorization" not in fake.requests[0].headers

    unreachable = f"http://127.0.0.1:{_unused_port()}/v1"
    with (
        OpenAIChatEnricher(base_url=unreachable, model="m", timeout=5) as enricher,
        pytest.raises(EnrichmentError, match="is the server running"),
    ):
        enricher.keywords("text", "en")


def test_llm_enricher_validates_its_settings() -> None:
    with pytest.raises(ConfigurationError, match="llm_base_url"):
        OpenAIChatEnricher(base_url="localhost:8000", model="m")
    with pytest.raises(ConfigurationError, match="llm_model"):
        OpenAIChatEnricher(base_url="http://x/v1", model=" ")
    with pytest.raises(ConfigurationError, match="llm_timeout"):
        OpenAIChatEnricher(base_url="http://x/v1", model="m", timeout=0)


def _unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
