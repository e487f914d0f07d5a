"""Questions a chunk answers, from templates, for enrichment: offline and deterministic.

Split out of :mod:`docworkers.ingest.enrich`, which re-exports the public names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from docworkers.errors import ConfigurationError
from docworkers.ingest.enrich_keywords import extract_keywords
from docworkers.ingest.enrich_language import APOSTROPHES

__all__ = ["MAX_QUESTIONS", "generate_questions"]

MAX_QUESTIONS = 10

_ABOUT = {
    "en": "What does the document say about {}?",
    "de": "Was sagt das Dokument über {}?",
    "fr": "Que dit le document à propos de {} ?",
    "es": "¿Qué dice el documento sobre {}?",
    "it": "Cosa dice il documento su {}?",
    "nl": "Wat zegt het document over {}?",
    "pt": "O que diz o documento sobre {}?",
}
_DEFINITION = re.compile(
    rf"^(?:(?P<article>the|a|an)\s+)?(?P<term>\w[\w{APOSTROPHES}-]*"
    rf"(?:\s+[\w{APOSTROPHES}-]+){{0,4}}?)\s+(?:"
    r"(?P<verb>is|are)\s+(?:a|an|the|one of the|defined as|called|known as)\s+\S"
    r"|(?:refers to|means|stands for)\s+\S)",
    re.IGNORECASE,
)
# A definition's term does not start with a pronoun, a preposition or a conjunction.
_NOT_TERMS = frozenset(
    {
        "it", "this", "that", "these", "those", "there", "here", "he", "she", "they", "we",
        "you", "i", "what", "which", "who", "each", "everything", "something", "nothing",
        "one", "all", "some", "in", "on", "at", "for", "with", "by", "from", "after", "before",
        "during", "however", "but", "and", "or", "so", "because", "if", "when", "while",
        "although",
    }
)  # fmt: skip
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def generate_questions(
    chunk_text: str, n: int, keywords: Sequence[str] | None = None, *, language: str = "en"
) -> list[str]:
    """Up to ``n`` (0-10) distinct questions the chunk answers, from templates; deterministic.

    First "What is X?" / "What are X?" for definitional English sentences ("X is a ...",
    "X refers to ..."), then "What does the document say about K?" for each keyphrase (in the
    chunk's language for en, de, fr, es, it, nl and pt, else English), then "How is A related
    to B?" for keyphrases that share a sentence. ``keywords`` default to YAKE's.
    """
    if not 0 <= n <= MAX_QUESTIONS:
        raise ConfigurationError("n", f"must be between 0 and {MAX_QUESTIONS}, got {n}")
    if n == 0 or not chunk_text.strip():
        return []
    if keywords is None:
        keywords = extract_keywords(chunk_text, language, top_n=max(n, 5))
    sentences = [" ".join(s.split()) for s in _SENTENCE_END.split(chunk_text) if s.strip()]
    questions: list[str] = []
    seen: set[str] = set()
    defined: set[str] = set()

    def add(question: str) -> None:
        key = unicodedata.normalize("NFKC", question).casefold()
        if key not in seen and len(questions) < n:
            seen.add(key)
            questions.append(question)

    if language == "en":
        for sentence in sentences:
            definition = _definition(sentence, chunk_text)
            if definition:
                term, verb = definition
                defined.add(re.sub(r"^(the|an?) ", "", term.casefold()))
                add(f"What {verb} {term}?")
    template = _ABOUT.get(language, _ABOUT["en"])
    for keyword in keywords:
        keyword = " ".join(keyword.split())
        if keyword and keyword.casefold() not in defined:
            add(template.format(keyword))
    if language == "en":
        for first, second in _cooccurring(keywords, sentences):
            add(f"How is {first} related to {second}?")
    return questions


def _definition(sentence: str, context: str) -> tuple[str, str] | None:
    match = _DEFINITION.match(sentence)
    if not match:
        return None
    term, article = match.group("term"), match.group("article")
    verb = (match.group("verb") or "is").lower()
    if term.split()[0].casefold() in _NOT_TERMS or len(term) < 2:
        return None
    first, _, rest = term.partition(" ")
    # "Penguins are ..." at a sentence start: lower-case it if the chunk uses it lower-case.
    if (
        not article
        and first[:1].isupper()
        and not first.isupper()
        and re.search(rf"\b{re.escape(first.lower())}\b", context)
    ):
        term = f"{first.lower()} {rest}".strip()
    return (f"{article.lower()} {term}" if article else term), verb


def _cooccurring(keywords: Sequence[str], sentences: Sequence[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    folded = [s.casefold() for s in sentences]
    for i, first in enumerate(keywords):
        for second in keywords[i + 1 :]:
            a, b = first.casefold(), second.casefold()
            if a not in b and b not in a and any(a in s and b in s for s in folded):
                pairs.append((first, second))
    return pairs
