"""The worker framework's tests run on both event loops (tests/event_loops.py)."""

from __future__ import annotations

import pytest
from event_loops import BOTH, LoopFactories


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> LoopFactories:
    return BOTH
