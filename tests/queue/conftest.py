"""Fixtures shared by the queue's tests; the modules that read and write sockets themselves run
on both event loops (tests/event_loops.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
from event_loops import ASYNCIO_ONLY, BOTH, LoopFactories
from redis_proxy import RedisProxy

#: Modules whose async tests run on asyncio's loop and on uvloop.
BOTH_LOOPS = frozenset({"test_resp_wire.py", "test_intake.py", "test_repository.py",
                        "test_sync_producer.py"})


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> LoopFactories:
    return BOTH if item.path.name in BOTH_LOOPS else ASYNCIO_ONLY


@pytest.fixture
async def proxy(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[RedisProxy]:
    """A :class:`RedisProxy` in front of the test's (emptied) Redis; start it for its URL."""
    made = RedisProxy(redis_url)
    yield made
    await made.close()
