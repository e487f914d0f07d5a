"""Fixtures for the API tests: the app in-process on a Runtime pointed at the test Redis,
a tmp_path Chroma and upload folder, and the session's loaded model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from api_support import ApiClient, running_api

from docworkers.settings import Settings


@pytest.fixture
def settings(redis_url: str, clean_redis: redis.Redis, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url, queue="api", chroma_path=str(tmp_path / "chroma"),
                    storage_dir=str(tmp_path / "uploads"), retry_delay=0.0)


@pytest.fixture
async def api(settings: Settings, embedder: Any) -> AsyncIterator[ApiClient]:
    """An httpx.AsyncClient on the app (no in-process workers)."""
    async with running_api(settings, embedder) as client:
        yield client
