"""Fusing the rankings of several retrievers into one (pure functions, no I/O).

Hybrid search asks the dense side (embeddings) and the keyword side (BM25) for candidates and
fuses them here. Reciprocal rank fusion is the default: it needs only ranks, so the two sides'
scores (cosine similarity, unbounded BM25) never have to be made comparable.
:func:`score_fusion` and :func:`zscore_fusion` are the alternatives that do compare scores,
after min-max normalising or standardising each side; hybrid search uses the latter once its
keyword side is expanded by feedback (:mod:`docworkers.ingest.lexical.feedback`), whose BM25
scores say more than ranks. All break ties deterministically: the better best rank first, then
the earlier retriever (two ids never tie on both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from docworkers.errors import ConfigurationError
from docworkers.ingest.defaults import RRF_K

__all__ = ["rrf", "score_fusion", "zscore_fusion"]

Fused = list[tuple[str, float]]


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K,
        weights: Sequence[float] | None = None) -> Fused:
    """Reciprocal rank fusion: ``score(id) = sum over rankings of weight / (k + rank)``, rank
    1-based, an id absent from a ranking adding nothing; best first. An id listed twice in one
    ranking counts at its first place."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ConfigurationError("rrf_k", f"must be an integer >= 0, got {k!r}")
    factors = _weights(weights, len(rankings))
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}  # id -> (best rank, first ranking with it there)
    for side, (ranking, weight) in enumerate(zip(rankings, factors, strict=True)):
        seen: set[str] = set()
        for rank, id_ in enumerate(ranking, start=1):
            if id_ in seen:
                continue
            seen.add(id_)
            scores[id_] = scores.get(id_, 0.0) + weight / (k + rank)
            best[id_] = min(best.get(id_, (rank, side)), (rank, side))
    return _ordered(scores, best)


def score_fusion(results: Sequence[Sequence[tuple[str, float]]],
                 weights: Sequence[float] | None = None) -> Fused:
    """Combination of min-max normalised scores: each retriever's scores are mapped onto
    [0, 1] (all equal: 1), weighted and summed; an id a retriever did not return adds 0.
    ``results`` are each retriever's ``(id, score)`` pairs, best first, higher better."""
    factors = _weights(weights, len(results))
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}
    for side, (result, weight) in enumerate(zip(results, factors, strict=True)):
        values = [score for _, score in result]
        if not all(math.isfinite(value) for value in values):
            raise ValueError(f"score_fusion: retriever {side} returned a non-finite score")
        low, high = (min(values), max(values)) if values else (0.0, 0.0)
        seen: set[str] = set()
        for rank, (id_, score) in enumerate(result, start=1):
            if id_ in seen:
                continue
            seen.add(id_)
            normalised = (score - low) / (high - low) if high > low else 1.0
            scores[id_] = scores.get(id_, 0.0) + weight * normalised
            best[id_] = min(best.get(id_, (rank, side)), (rank, side))
    return _ordered(scores, best)


def zscore_fusion(results: Sequence[Sequence[tuple[str, float]]],
                  weights: Sequence[float] | None = None) -> Fused:
    """Weighted sum of standardised scores over the union of the candidates: an id a
    retriever did not return gets that retriever's lowest returned score (it ranked below all
    of them), then each retriever's scores over the union are z-scored (mean 0, standard
    deviation 1; all equal: 0). ``results`` as for :func:`score_fusion`. Unlike min-max, one
    outlier does not squash the rest of a side's scores together."""
    factors = _weights(weights, len(results))
    best: dict[str, tuple[int, int]] = {}
    side_scores: list[dict[str, float]] = []
    for side, result in enumerate(results):
        scores: dict[str, float] = {}
        for rank, (id_, score) in enumerate(result, start=1):
            if not math.isfinite(score):
                raise ValueError(f"zscore_fusion: retriever {side} returned a non-finite score")
            if id_ not in scores:
                scores[id_] = score
                best[id_] = min(best.get(id_, (rank, side)), (rank, side))
        side_scores.append(scores)
    fused = dict.fromkeys(best, 0.0)
    for scores, weight in zip(side_scores, factors, strict=True):
        if not scores:
            continue
        floor = min(scores.values())
        values = [scores.get(id_, floor) for id_ in fused]
        mean = math.fsum(values) / len(values)
        spread = math.sqrt(math.fsum((value - mean) ** 2 for value in values) / len(values))
        for id_, value in zip(fused, values, strict=True):
            fused[id_] += weight * ((value - mean) / spread if spread > 0 else 0.0)
    return _ordered(fused, best)


def _weights(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise ConfigurationError("weights", f"needs one weight per ranking: got {len(weights)} "
                                            f"for {count}")
    for weight in weights:
        if not (math.isfinite(weight) and weight >= 0):
            raise ConfigurationError("weights", f"must be finite and >= 0, got {weight!r}")
    return [float(weight) for weight in weights]


def _ordered(scores: dict[str, float], best: dict[str, tuple[int, int]]) -> Fused:
    order = sorted(scores, key=lambda id_: (-scores[id_], best[id_]))
    return [(id_, scores[id_]) for id_ in order]
