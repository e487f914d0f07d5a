"""Settings with the local stack's URLs filled in where no server is configured."""

from __future__ import annotations

import dataclasses

from docworkers.settings import Settings
from docworkers.stack.local import LocalStack


def with_local_servers(settings: Settings, *, redis: bool = True,
                       chroma: bool = False) -> Settings:
    """``settings`` with ``redis_url`` (and, with ``chroma``, ``chroma_url`` unless an
    embedded ``chroma_path`` is set) pointing at the local stack of ``settings.home``; each
    server is found or started. Settings that name their servers come back unchanged."""
    stack = LocalStack(settings.home)
    if redis and settings.local_redis:
        settings = dataclasses.replace(settings, redis_url=stack.url("redis"))
    if chroma and settings.local_chroma:
        settings = dataclasses.replace(settings, chroma_url=stack.url("chroma"))
    return settings
