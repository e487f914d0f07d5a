"""Pseudo-relevance feedback for the keyword side (RM3; pure functions, no I/O).

A keyword query says what its writer typed, not what the relevant texts say: a question about
"heat transfer at hypersonic speeds" misses the abstract that speaks of "stagnation-point
heating". RM3 reads the best few chunks of a first search, takes the terms most frequent in them
(each chunk's term frequencies over its length, averaged: a relevance model), and scores again
with the query's own terms and those, each weighted. Hybrid search takes the feedback chunks
from its first fused ranking, so the dense side's choices teach the keyword side words the query
lacks (numbers: README, Performance; ``benchmarks/retrieval_quality.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["rm3"]


def rm3(query_terms: Sequence[str], feedback: Sequence[Mapping[str, int]], *,
        terms: int, original_weight: float) -> dict[str, float]:
    """The weighted terms of the expanded query: ``original_weight`` shared equally by the
    query's distinct terms, ``1 - original_weight`` by the ``terms`` most frequent terms of the
    ``feedback`` chunks (each a chunk's term counts) in proportion to their mean relative
    frequency (ties: the alphabetically first). A term in both gets both shares. Without
    feedback, the query's terms alone, equally weighted."""
    if not 0 <= original_weight <= 1:
        raise ValueError(f"original_weight must be in [0, 1], got {original_weight!r}")
    distinct = list(dict.fromkeys(query_terms))
    relevance: dict[str, float] = {}
    for counts in feedback:
        length = sum(counts.values())
        for term, count in counts.items():
            if length > 0 and count > 0:
                relevance[term] = relevance.get(term, 0.0) + count / length / len(feedback)
    expansion = sorted(relevance.items(), key=lambda pair: (-pair[1], pair[0]))[:max(terms, 0)]
    total = sum(value for _, value in expansion)
    if total <= 0:
        return dict.fromkeys(distinct, 1.0 / len(distinct)) if distinct else {}
    if not distinct:
        return {term: value / total for term, value in expansion}
    weighted = dict.fromkeys(distinct, original_weight / len(distinct))
    for term, value in expansion:
        weighted[term] = weighted.get(term, 0.0) + (1 - original_weight) * value / total
    return weighted
