"""Retry delays: exponential backoff with full jitter and a cap. Pure, so it is tested alone."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    retry: int,
    *,
    base: float,
    factor: float = 2.0,
    cap: float = 300.0,
    jitter: Callable[[float, float], float] | None = random.uniform,
) -> float:
    """Seconds to wait before the ``retry``-th retry (1-based).

    The ceiling is ``min(cap, base * factor ** (retry - 1))``; with full jitter the delay is
    uniform in [0, ceiling] (spreads a thundering herd), with ``jitter=None`` it is the ceiling.
    """
    if retry < 1:
        raise ValueError(f"retry must be >= 1, got {retry}")
    if base < 0 or cap < 0 or factor < 1:
        raise ValueError("base and cap must be >= 0 and factor >= 1")
    try:
        ceiling = min(cap, base * factor ** (retry - 1))
    except OverflowError:
        ceiling = cap
    return ceiling if jitter is None else jitter(0.0, ceiling)
