"""Index terms of a text, for the keyword (BM25) side of search: one function for documents and
queries, so a query finds exactly the terms its words were indexed under.

Words are lowercased, English stopwords dropped and Snowball-stemmed ("contracts" and
"contract" meet). Identifier-like tokens (part numbers, tickers, clause references: a run of
letters/digits joined by ``- _ . /``) are kept whole as well, lowercased and unstemmed, because
a rare code such as ``ZX-4471`` is exactly what a keyword search is for and its parts alone
(``zx``, ``4471``) match far too much.
"""

from __future__ import annotations

import re
import threading

import Stemmer

__all__ = ["STOPWORDS", "exact_terms", "tokenize"]

# A run of letters/digits (``[^\W_]``: word characters but the underscore), and such runs joined
# by single separators; the separators split a token into its parts.
_TOKEN = re.compile(r"[^\W_]+(?:[-_./][^\W_]+)*")
_SEPARATOR = re.compile(r"[-_./]")
_DIGIT = re.compile(r"\d")

# Contractions are split at the apostrophe ("don't": "don", "t"), so their parts are listed.
_STOPWORD_TEXT = """
a about above after again against all am an and any are aren as at be because been before being
below between both but by can cannot could couldn did didn do does doesn doing don down during
each few for from further had hadn has hasn have haven having he her here hers herself him
himself his how i if in into is isn it its itself let me more most mustn my myself no nor not
of off on once only or other ought our ours ourselves out over own same shan she should shouldn
so some such than that the their theirs them themselves then there these they this those
through to too under until up very was wasn we were weren what when where which while who whom
why will with would wouldn you your yours yourself yourselves s t d ll m re ve also may
might must shall upon via
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_local = threading.local()  # a Stemmer object is not safe to share between threads


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def tokenize(text: str) -> list[str]:
    """Index terms of ``text`` in text order: lowercased words without English stopwords,
    Snowball-stemmed, plus every identifier-like token kept whole (a run of letters/digits
    joined by ``- _ . /`` that contains a digit or an inner separator: 'ZX-4471' gives 'zx',
    '4471' and 'zx-4471'; 'clause-7.3(b)' gives ..., 'clause-7.3' and 'b'), lowercased and
    unstemmed. The same function serves documents and queries."""
    words: list[str] = []  # to stem, all at once
    whole: list[tuple[int, str]] = []  # (position in words, identifier) to insert after stemming
    for match in _TOKEN.finditer(text.lower()):
        token = match.group()
        parts = _SEPARATOR.split(token)
        if len(parts) == 1 and _DIGIT.search(token):
            whole.append((len(words), token))  # 'zx4471', '2002': a word that is an identifier
            continue
        words += [part for part in parts if part not in STOPWORDS]
        if len(parts) > 1:
            whole.append((len(words), token))
    stemmed: list[str] = _stemmer().stemWords(words)
    if not whole:
        return stemmed
    terms: list[str] = []
    start = 0
    for position, token in whole:
        terms += stemmed[start:position]
        terms.append(token)
        start = position
    terms += stemmed[start:]
    return terms


def exact_terms(query: str) -> list[str]:
    """The index terms of ``query`` that name one exact thing: identifiers with a digit
    ('POL-2024-00017', 'CPTY-8F3K2', 'CL-7.3') and words written in capitals ('XJQZ', 'EMIR',
    'AAPL.O'), each as :func:`tokenize` indexes it. Hybrid search puts the chunks that contain
    one of them first: who types a policy number wants that policy, not similar prose."""
    exact: list[str] = []
    for match in _TOKEN.finditer(query):
        token = match.group()
        joined = _SEPARATOR.search(token) is not None
        letters = _SEPARATOR.sub("", token)
        coded = _DIGIT.search(token) is not None and (joined or not letters.isdigit())
        capitals = len(letters) >= 2 and letters.isalpha() and letters.isupper()
        if coded or (capitals and joined):
            exact.append(token.lower())  # kept whole by tokenize
        elif capitals and token.lower() not in STOPWORDS:
            exact += _stemmer().stemWords([token.lower()])
    return list(dict.fromkeys(exact))
