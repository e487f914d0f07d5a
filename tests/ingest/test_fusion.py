"""Rank and score fusion: pure functions, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from docworkers.errors import ConfigurationError
from docworkers.ingest.defaults import RRF_K
from docworkers.ingest.fusion import rrf, score_fusion, zscore_fusion


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = dict(rrf([["a", "b", "c"], ["c", "a"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)


def test_rrf_orders_best_first_and_found_by_both_beats_one_side() -> None:
    fused = rrf([["a", "b", "c"], ["c", "a"]], k=60)
    assert [id_ for id_, _ in fused] == ["a", "c", "b"]
    assert [score for _, score in fused] == sorted((s for _, s in fused), reverse=True)


def test_rrf_default_k_is_the_shared_default() -> None:
    [(id_, score)] = rrf([["x"]])
    assert id_ == "x"
    assert score == pytest.approx(1 / (RRF_K + 1))


def test_rrf_ties_break_by_best_rank_then_earlier_ranking() -> None:
    # a and z are each first on one side: same score, same best rank; a's side comes first.
    assert [id_ for id_, _ in rrf([["z", "m"], ["a", "n"]])] == ["z", "a", "m", "n"]
    # equal scores, both first somewhere: the one the earlier ranking found first
    assert [id_ for id_, _ in rrf([["b"], ["b"], ["a"], ["a"]])] == ["b", "a"]


def test_rrf_weights_scale_each_ranking() -> None:
    fused = dict(rrf([["a"], ["b"]], k=0, weights=[2.0, 0.5]))
    assert fused == {"a": pytest.approx(2.0), "b": pytest.approx(0.5)}
    # a zero weight keeps the ids (they were found) but gives them nothing
    assert rrf([["a"], ["b"]], weights=[1.0, 0.0])[-1] == ("b", 0.0)


def test_rrf_counts_a_repeated_id_once_per_ranking() -> None:
    assert dict(rrf([["a", "a", "b"]], k=0)) == {"a": pytest.approx(1.0),
                                                 "b": pytest.approx(1 / 3)}


def test_rrf_of_nothing_is_empty() -> None:
    assert rrf([]) == []
    assert rrf([[], []]) == []


@pytest.mark.parametrize("k", [-1, 1.5, True])
def test_rrf_rejects_a_bad_k(k: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        rrf([["a"]], k=k)  # type: ignore[arg-type]
    assert caught.value.field == "rrf_k"


@pytest.mark.parametrize("weights", [[1.0], [1.0, -1.0], [1.0, math.nan], [math.inf, 1.0]])
def test_fusions_reject_bad_weights(weights: list[float]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        rrf([["a"], ["b"]], weights=weights)
    assert caught.value.field == "weights"
    with pytest.raises(ConfigurationError):
        score_fusion([[("a", 1.0)], [("b", 1.0)]], weights=weights)


def test_score_fusion_normalises_each_side_to_unit_range() -> None:
    dense = [("a", 0.9), ("b", 0.7), ("c", 0.5)]
    keyword = [("c", 30.0), ("d", 10.0)]  # BM25: another scale entirely
    fused = dict(score_fusion([dense, keyword]))
    assert fused == {"a": pytest.approx(1.0), "b": pytest.approx(0.5),
                     "c": pytest.approx(0.0 + 1.0), "d": pytest.approx(0.0)}


def test_score_fusion_weights_and_order() -> None:
    fused = score_fusion([[("a", 2.0), ("b", 1.0)], [("b", 5.0), ("a", 1.0)]],
                         weights=[1.0, 3.0])
    assert [id_ for id_, _ in fused] == ["b", "a"]
    assert [score for _, score in fused] == [pytest.approx(3.0), pytest.approx(1.0)]


def test_score_fusion_equal_scores_all_count_fully() -> None:
    assert dict(score_fusion([[("a", 0.3), ("b", 0.3)]])) == {"a": 1.0, "b": 1.0}
    assert score_fusion([[], []]) == []


def test_score_fusion_rejects_non_finite_scores() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        score_fusion([[("a", math.nan)]])


def test_zscore_fusion_standardises_each_side_over_the_union() -> None:
    # dense: a 0.9, b 0.5 (c missing: its lowest, 0.5); keyword: c 8, a 2 (b missing: 2)
    fused = dict(zscore_fusion([[("a", 0.9), ("b", 0.5)], [("c", 8.0), ("a", 2.0)]],
                               weights=(0.3, 0.7)))

    def z(values: list[float]) -> list[float]:
        mean = sum(values) / len(values)
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return [(v - mean) / spread for v in values]

    dense, keyword = z([0.9, 0.5, 0.5]), z([2.0, 2.0, 8.0])  # a, b, c
    for i, id_ in enumerate("abc"):
        assert fused[id_] == pytest.approx(0.3 * dense[i] + 0.7 * keyword[i])
    assert list(fused) == ["c", "a", "b"]


def test_zscore_fusion_ties_and_constant_sides() -> None:
    # every score equal on both sides: all 0, ordered by best rank, then the earlier side
    fused = zscore_fusion([[("x", 1.0), ("y", 1.0)], [("z", 3.0)]])
    assert fused == [("x", 0.0), ("z", 0.0), ("y", 0.0)]
    assert zscore_fusion([[], []]) == []
    assert [id_ for id_, _ in zscore_fusion([[("a", 1.0), ("a", 0.0)], []])] == ["a"]
    with pytest.raises(ValueError, match="non-finite"):
        zscore_fusion([[("a", math.inf)]])
    with pytest.raises(ConfigurationError):
        zscore_fusion([[("a", 1.0)]], weights=(1.0, 2.0))
