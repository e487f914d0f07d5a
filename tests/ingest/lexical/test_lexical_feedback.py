"""RM3 query expansion: pure function, checked against hand-computed weights."""

from __future__ import annotations

import pytest

from docworkers.ingest.lexical.feedback import rm3


def test_the_query_keeps_its_share_and_the_feedback_terms_share_the_rest() -> None:
    feedback = [{"heat": 2, "flux": 1, "wall": 1},  # length 4
                {"heat": 1, "shock": 1}]  # length 2
    weighted = rm3(["heat", "transfer", "heat"], feedback, terms=2, original_weight=0.4)
    # relevance: heat (2/4 + 1/2) / 2 = 0.5, shock 0.25, flux 0.125, wall 0.125: the top 2
    assert weighted == pytest.approx({
        "heat": 0.4 / 2 + 0.6 * 0.5 / 0.75,  # a query term found in feedback gets both shares
        "transfer": 0.4 / 2,
        "shock": 0.6 * 0.25 / 0.75,
    })
    assert sum(weighted.values()) == pytest.approx(1.0)


def test_ties_go_to_the_alphabetically_first_term() -> None:
    weighted = rm3(["q"], [{"b": 1, "a": 1, "c": 1}], terms=2, original_weight=0.5)
    assert set(weighted) == {"q", "a", "b"}


def test_without_feedback_the_query_terms_alone() -> None:
    assert rm3(["a", "b"], [], terms=10, original_weight=0.3) == {"a": 0.5, "b": 0.5}
    assert rm3(["a"], [{}], terms=10, original_weight=0.3) == {"a": 1.0}
    assert rm3([], [], terms=10, original_weight=0.3) == {}
    assert rm3([], [{"x": 1}], terms=10, original_weight=0.3) == {"x": 1.0}


def test_the_original_weight_is_checked() -> None:
    with pytest.raises(ValueError, match="original_weight"):
        rm3(["a"], [], terms=1, original_weight=1.5)
