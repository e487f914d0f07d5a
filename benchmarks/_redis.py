"""The Redis server a benchmark runs against: the one ``--redis-url`` names, or a private
embedded server started for the run; and removing what a run wrote on a shared server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis


@contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """``url``, or the URL of a private embedded server that is stopped afterwards."""
    if url is not None:
        yield url
        return
    from docworkers.embedded import EmbeddedRedis

    server = EmbeddedRedis()
    try:
        yield server.start()
    finally:
        server.stop()


def delete_namespace(url: str, namespace: str) -> None:
    """Delete every key under ``<namespace>:``, 1,000 at a time."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
    finally:
        client.close()
