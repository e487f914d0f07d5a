"""Offline, deterministic enrichment: document metadata, language, keywords and questions.

Everything here is a pure function of its input (no network, no model download, no randomness):
the same document always gets the same title, language, keywords and questions. The
:class:`Enricher` protocol lets the pipeline swap in an LLM-backed enricher
(:mod:`docworkers.ingest.enrich_llm`); :class:`LocalEnricher` is the default.

Methods are synchronous and CPU-bound (YAKE takes 10-15 ms per 256-token chunk, the rest is
negligible); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Protocol

from docworkers.errors import ConfigurationError
from docworkers.ingest.document import ParsedDocument

if TYPE_CHECKING:
    import yake

__all__ = [
    "MAX_QUESTIONS",
    "MAX_TITLE_CHARS",
    "Enricher",
    "LocalEnricher",
    "count_words",
    "detect_language",
    "extract_document_metadata",
    "extract_keywords",
    "generate_questions",
]

MAX_QUESTIONS = 10
MAX_TITLE_CHARS = 200
_SAMPLE_CHARS = 20_000  # language detection and document keywords read at most this much


class Enricher(Protocol):
    """Adds searchable metadata to documents and chunks."""

    def document_metadata(self, doc: ParsedDocument) -> dict[str, Any]: ...

    def keywords(self, text: str, language: str, top_n: int = 5) -> list[str]: ...

    def questions(
        self, text: str, n: int, keywords: Sequence[str], language: str = "en"
    ) -> list[str]: ...


class LocalEnricher:
    """:class:`Enricher` from heuristics and YAKE: fast, offline and deterministic."""

    def __init__(self, *, max_ngram: int = 3) -> None:
        if not 1 <= max_ngram <= 5:
            raise ConfigurationError("max_ngram", f"must be between 1 and 5, got {max_ngram}")
        self.max_ngram = max_ngram

    def document_metadata(self, doc: ParsedDocument) -> dict[str, Any]:
        return extract_document_metadata(doc)

    def keywords(self, text: str, language: str, top_n: int = 5) -> list[str]:
        return extract_keywords(text, language, top_n, max_ngram=self.max_ngram)

    def questions(
        self, text: str, n: int, keywords: Sequence[str], language: str = "en"
    ) -> list[str]:
        return generate_questions(text, n, keywords, language=language)


# --- document metadata -----------------------------------------------------------------------

_JUNK_TITLES = re.compile(
    r"^(untitled(\s+document)?|document\d*|title|slide \d+|microsoft (word|powerpoint)( - .*)?)$",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^#\s+(.+?)(?:\s+#+)?\s*$", re.MULTILINE)
_ANY_HEADING_MARK = re.compile(r"^#{1,6}\s+")


def extract_document_metadata(doc: ParsedDocument) -> dict[str, Any]:
    """title, author, created, modified, page_count, language, word_count, char_count.

    The title is the file's own title (unless it is a placeholder like "Untitled"), else the
    first ``# `` heading, else the first short non-empty line, else the filename stem. author,
    created and modified come from the file's metadata (None when absent). The language is
    detected from the text; the file's declared language is used only when detection fails,
    because templates often declare a language the text is not written in.
    """
    text = doc.text
    declared = _primary_language(doc.metadata.get("language"))
    detected = detect_language(text)
    return {
        "title": _title(doc),
        "author": _scalar(doc.metadata.get("author")),
        "created": _scalar(doc.metadata.get("created")),
        "modified": _scalar(doc.metadata.get("modified")),
        "page_count": _page_count(doc),
        "language": declared if detected == "und" and declared else detected,
        "word_count": count_words(text),
        "char_count": len(text),
    }


def _title(doc: ParsedDocument) -> str:
    declared = doc.metadata.get("title")
    if isinstance(declared, str):
        candidate = " ".join(declared.split())
        if candidate and not _JUNK_TITLES.match(candidate):
            return candidate[:MAX_TITLE_CHARS]
    head = doc.text[:_SAMPLE_CHARS]
    heading = _HEADING.search(head)
    if heading:
        return " ".join(heading.group(1).split())[:MAX_TITLE_CHARS]
    for seen, line in enumerate(head.splitlines()):
        line = " ".join(_ANY_HEADING_MARK.sub("", line.strip()).split())
        if 3 <= len(line) <= 120 and any(ch.isalpha() for ch in line) and line[0] not in "|`<{":
            return line
        if seen > 40:
            break
    return PurePath(doc.filename).stem or doc.filename


def _page_count(doc: ParsedDocument) -> int | None:
    declared = doc.metadata.get("page_count")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 0:
        return declared
    numbered = [page.number for page in doc.pages if page.number is not None]
    return len(numbered) if numbered else None


def _scalar(value: Any) -> str | int | float | None:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None if value is None else str(value)


def _primary_language(value: Any) -> str | None:
    """``"en-US"`` -> ``"en"``; None for anything that is not a language tag."""
    if not isinstance(value, str):
        return None
    primary = re.split(r"[-_]", value.strip().lower(), maxsplit=1)[0]
    return primary if re.fullmatch(r"[a-z]{2}", primary) else None


_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_APOSTROPHES = "'\u2019"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+(?:[{_APOSTROPHES}-][^\W{_CJK}]+)*")


def count_words(text: str) -> int:
    """Runs of letters and digits; each Chinese or Japanese character counts as one word."""
    return sum(1 for _ in _WORD.finditer(text))


# --- language --------------------------------------------------------------------------------

# Frequent function words; words shared by several lists count for each in proportion.
_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to is are was were be been that this it for on with as by at from "
        "or an not which have has had they their there we you he she his her its but can "
        "will would should into who what when if all one",
        "de": "der die das und ist sind nicht ein eine einen einem einer des dem den zu mit "
        "sich auf für von im auch es als an wie nach bei aus wird werden wurde ihre ihr sie "
        "wir er noch nur oder aber dass über alle",
        "fr": "le la les et des est une un du en dans que qui pour pas sur au aux avec ce "
        "cette ils elle elles sont par plus ne se son sa ses leur leurs être ont été nous "
        "vous doivent autres",
        "es": "el la los las y de del que en es un una por con para se su sus al lo como más "
        "pero no ha han este esta son está están ser fue otros",
        "it": "il lo la gli le e di del della dei delle che è un una per con non sono si da al "
        "alla nel nella ed questo questa essi anche ma come altri",
        "nl": "de het een en van is zijn niet dat die in op te met voor aan als er ook bij "
        "zich door naar wordt worden zij hij ze maar om dit deze alle",
        "pt": "o a os as e de do da dos das que em um uma por para com não é são se seu sua "
        "no na nos nas ao aos pelo pela mais como outros",
    }.items()
}
_LANGUAGES_OF: dict[str, tuple[str, ...]] = {}
for _lang, _words in _STOPWORDS.items():
    for _word in _words:
        _LANGUAGES_OF[_word] = (*_LANGUAGES_OF.get(_word, ()), _lang)
_LATIN_WORD = re.compile(r"[^\W\d_]+")

# Letters beyond Russian's. Belarusian shares Ukrainian's dotted i, so its short u is tested
# first; Macedonian shares most of Serbian's extra letters, so its own three are tested first.
_UKRAINIAN, _BELARUSIAN = set("іїєґ"), set("ў")
_SERBIAN, _MACEDONIAN = set("ђћџљњј"), set("ѓќѕ")
_RUSSIAN = set("абвгдеёжзийклмнопрстуфхцчшщъыьэюя")
_KNOWN_CYRILLIC = _RUSSIAN | _UKRAINIAN | _BELARUSIAN | _SERBIAN | _MACEDONIAN


def _script(ch: str) -> str:
    code = ord(ch)
    if code < 0x250:
        return "latin"
    for start, end, name in _SCRIPT_RANGES:
        if start <= code <= end:
            return name
    return "other"


_SCRIPT_RANGES = (
    (0x0370, 0x03FF, "greek"), (0x1F00, 0x1FFF, "greek"), (0x0400, 0x052F, "cyrillic"),
    (0x0590, 0x05FF, "hebrew"), (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"),
    (0x08A0, 0x08FF, "arabic"), (0xFB50, 0xFDFF, "arabic"), (0xFE70, 0xFEFF, "arabic"),
    (0x0E00, 0x0E7F, "thai"), (0x3040, 0x30FF, "kana"), (0x31F0, 0x31FF, "kana"),
    (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"),
    (0x1100, 0x11FF, "hangul"), (0x3130, 0x318F, "hangul"), (0xAC00, 0xD7AF, "hangul"),
)  # fmt: skip
_SCRIPT_LANGUAGE = {"greek": "el", "hebrew": "he", "arabic": "ar", "thai": "th", "hangul": "ko"}


def detect_language(text: str) -> str:
    """The ISO 639-1 code of ``text``'s language, or ``"und"`` when unsure.

    Letters in a non-Latin script decide by script (Arabic, Hebrew, Greek, Thai, Korean, Chinese
    vs Japanese by kana; ru, uk, be, bg, sr, mk by their letters). Latin text is
    scored by function words of en, de, fr, es, it, nl and pt; anything else is "und".
    """
    sample = _sample(text)
    scripts = Counter(_script(ch) for ch in sample if ch.isalpha())
    letters = sum(scripts.values())
    if letters == 0:
        return "und"
    script, count = max(scripts.items(), key=lambda item: (item[1], item[0]))
    if script == "han" or script == "kana":
        cjk = scripts["han"] + scripts["kana"]
        if cjk >= 0.3 * letters:
            return "ja" if scripts["kana"] >= 0.05 * cjk else "zh"
    elif script in _SCRIPT_LANGUAGE and count >= 0.3 * letters:
        return _SCRIPT_LANGUAGE[script]
    elif script == "cyrillic" and count >= 0.3 * letters:
        return _cyrillic_language(sample, count)
    if scripts["latin"] < 0.5 * letters:
        return "und"
    return _latin_language(sample)


def _cyrillic_language(sample: str, letters: int) -> str:
    found = Counter(ch for ch in sample.lower() if "\u0400" <= ch <= "\u052f" and ch.isalpha())
    foreign = sum(n for ch, n in found.items() if ch not in _KNOWN_CYRILLIC)
    if foreign > 0.02 * letters:
        return "und"  # another Cyrillic language (Kazakh, Abkhaz ...)
    for language, marks in (("be", _BELARUSIAN), ("mk", _MACEDONIAN), ("sr", _SERBIAN)):
        if sum(found[ch] for ch in marks) > 0.005 * letters:
            return language
    if sum(found[ch] for ch in _UKRAINIAN) > 0.005 * letters:
        return "uk"
    if found["ы"] + found["э"] == 0 and found["ъ"] > 0.005 * letters:
        return "bg"  # Bulgarian has no ы or э but a frequent ъ
    return "ru"


def _latin_language(sample: str) -> str:
    """The language whose function words dominate: they must make up at least a fifth of the
    words, include four different ones, and outscore the runner-up by half again (or, in
    longer text diluted by names and markup: a twelfth, six different, three times). Tuned on
    the UDHR's first article in ~500 languages: unsupported languages come out "und" except
    close relatives (Afrikaans -> nl, Asturian -> es, Scots -> en)."""
    words = _LATIN_WORD.findall(sample.lower())
    scores: dict[str, float] = {}
    distinct: dict[str, set[str]] = {}
    for word in words:
        languages = _LANGUAGES_OF.get(word, ())
        for language in languages:
            # shared words count in proportion; one-letter words ("a", "e", "o") half again
            weight = (0.5 if len(word) == 1 else 1.0) / len(languages)
            scores[language] = scores.get(language, 0.0) + weight
            distinct.setdefault(language, set()).add(word)
    if not scores:
        return "und"
    (best, first), *rest = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    second = rest[0][1] if rest else 0.0
    kinds, share = len(distinct[best]), first / len(words)
    if kinds >= 4 and share >= 0.2 and first >= 1.5 * second:
        return best
    if kinds >= 6 and share >= 0.08 and first >= 3 * second:
        return best  # long text diluted by names, numbers and markup, but unambiguous
    return "und"


def _sample(text: str) -> str:
    """The start, middle and end of a long text: detection must not read a whole book."""
    if len(text) <= _SAMPLE_CHARS:
        return text
    third = _SAMPLE_CHARS // 3
    middle = len(text) // 2
    return "\n".join((text[:third], text[middle : middle + third], text[-third:]))


# --- keywords --------------------------------------------------------------------------------

# YAKE's stop-word lists by our language codes; other codes select its language-neutral list.
_YAKE_LANGUAGES = {"en", "de", "fr", "es", "it", "nl", "pt", "ar", "ru", "uk", "el", "bg"}
_PHRASE_EDGES = " \t\"'()[]{}.,;:!?-\u2013\u2014\u2018\u2019\u201c\u201d\u00ab\u00bb"
_NO_WORD_SPACES = {"zh", "ja", "th"}  # YAKE splits on spaces: no useful keyphrases there


@functools.lru_cache(maxsize=64)
def _extractor(language: str, top: int, max_ngram: int) -> yake.KeywordExtractor:
    # Imported here: yake pulls in networkx (~0.15 s), which every CLI command would pay.
    import yake

    # "xx" has no stop-word file: YAKE falls back to its language-neutral (empty) list.
    lan = language if language in _YAKE_LANGUAGES else "xx"
    return yake.KeywordExtractor(lan=lan, n=max_ngram, top=top, dedup_lim=0.9)


def extract_keywords(
    text: str, language: str, top_n: int = 5, *, max_ngram: int = 3, max_chars: int = _SAMPLE_CHARS
) -> list[str]:
    """The ``top_n`` keyphrases of ``text`` by YAKE, best first; deterministic.

    Phrases of digits or punctuation only are dropped, and so is a phrase that repeats (case
    aside) or is contained in one already chosen. Only the first ``max_chars`` characters are
    read. Chinese, Japanese and Thai give an empty list (no spaces between words).
    """
    if not 0 <= top_n <= 50:
        raise ConfigurationError("top_n", f"must be between 0 and 50, got {top_n}")
    text = " ".join(text[:max_chars].split())
    if top_n == 0 or language in _NO_WORD_SPACES or not text:
        return []
    # Ask for plenty: the containment rule below discards many (YAKE scores all anyway).
    candidates = _extractor(language, max(20, top_n * 6), max_ngram).extract_keywords(text)
    chosen: list[str] = []
    folded: list[str] = []
    for phrase, _score in candidates:
        phrase = phrase.strip(_PHRASE_EDGES)
        key = f" {phrase.casefold()} "
        if len(phrase) < 2 or not any(ch.isalpha() for ch in phrase):
            continue
        if any(key in other or other in key for other in folded):
            continue
        chosen.append(phrase)
        folded.append(key)
        if len(chosen) == top_n:
            break
    return chosen


# --- questions -------------------------------------------------------------------------------

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
    rf"^(?:(?P<article>the|a|an)\s+)?(?P<term>\w[\w{_APOSTROPHES}-]*"
    rf"(?:\s+[\w{_APOSTROPHES}-]+){{0,4}}?)\s+(?:"
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
