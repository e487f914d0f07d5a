"""Keyphrases of a text by YAKE, for enrichment: offline and deterministic.

Split out of :mod:`docworkers.ingest.enrich`, which re-exports :func:`extract_keywords`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from docworkers.errors import ConfigurationError
from docworkers.ingest.enrich_language import SAMPLE_CHARS

if TYPE_CHECKING:
    import yake

__all__ = ["extract_keywords"]

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
    text: str, language: str, top_n: int = 5, *, max_ngram: int = 3, max_chars: int = SAMPLE_CHARS
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
