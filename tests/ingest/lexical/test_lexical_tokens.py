"""tokenize: the terms of documents and queries (no Redis)."""

from __future__ import annotations

from docworkers.ingest.lexical.tokens import STOPWORDS, exact_terms, tokenize


def test_words_are_lowercased_stemmed_and_stopwords_dropped() -> None:
    assert tokenize("The Contracts were RUNNING under the models") == ["contract", "run", "model"]
    assert tokenize("contract contracts Contracting") == ["contract"] * 3


def test_identifiers_are_kept_whole_beside_their_parts() -> None:
    assert tokenize("part ZX-4471") == ["part", "zx", "4471", "zx-4471"]
    assert "isda-2002" in tokenize("under the ISDA-2002 master agreement")
    assert "aapl.o" in tokenize("AAPL.O closed higher")
    assert "foo_bar" in tokenize("call foo_bar()")
    assert "path/to/file" in tokenize("see path/to/file.")


def test_an_identifier_ends_where_its_letters_and_digits_end() -> None:
    terms = tokenize("clause-7.3(b) applies.")
    assert "clause-7.3" in terms
    assert "b" in terms and "appli" in terms
    assert not any(term.endswith(".") or "(" in term for term in terms)


def test_a_single_word_with_digits_is_one_unstemmed_term() -> None:
    assert tokenize("zx4471 2002 models2") == ["zx4471", "2002", "models2"]


def test_identifiers_are_not_stemmed_and_keep_stopword_parts() -> None:
    assert tokenize("The-Runnings") == ["run", "the-runnings"]


def test_queries_meet_documents() -> None:
    document = set(tokenize("Termination events are listed in Section 5(b)(iv) of ISDA-2002."))
    assert set(tokenize("isda-2002 termination event")) <= document


def test_nothing_to_index() -> None:
    assert tokenize("") == []
    assert tokenize("the of and, to -- !!") == []
    assert len(STOPWORDS) > 120


def test_unicode_words() -> None:
    assert tokenize("Größe café") == [*tokenize("größe"), *tokenize("café")]
    assert tokenize("café") == ["café"]


def test_exact_terms_are_codes_with_digits_and_words_in_capitals() -> None:
    cases = {
        "what is the exposure limit of CPTY-8F3K2?": ["cpty-8f3k2"],
        "POL-2024-00017": ["pol-2024-00017"],
        "clause CL-7.3(b) of EMIR-ART-11": ["cl-7.3", "emir-art-11"],
        "XJQZ rating, AAPL.O price": ["xjqz", "aapl.o"],
        "counterparty limits in 2024": [],  # a bare number: a year, a count
        "IT risk of risk-based limits": [],  # a stopword in capitals; a plain compound word
    }
    for query, expected in cases.items():
        found = exact_terms(query)
        assert found == expected, query
        assert set(found) <= set(tokenize(query)), query  # as the index holds them
