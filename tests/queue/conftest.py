"""Fixtures shared by the queue's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
from redis_proxy import RedisProxy


@pytest.fixture
async def proxy(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[RedisProxy]:
    """A :class:`RedisProxy` in front of the test's (emptied) Redis; start it for its URL."""
    made = RedisProxy(redis_url)
    yield made
    await made.close()
