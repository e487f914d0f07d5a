"""A clock the test moves by hand, for time-based logic (breakers, schedulers, scalers)."""

from __future__ import annotations


class ManualClock:
    """Call it for the time; set ``now`` (seconds) to move it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
