"""Translate redis-py errors into the package's own, for components outside the repository."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from docworkers.errors import RepositoryConnectionError, RepositoryError


@asynccontextmanager
async def translated_errors(what: str) -> AsyncIterator[None]:
    """Raise RepositoryConnectionError / RepositoryError naming ``what`` needed Redis."""
    with translated_errors_sync(what):
        yield


@contextmanager
def translated_errors_sync(what: str) -> Iterator[None]:
    """:func:`translated_errors` for synchronous clients."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise RepositoryConnectionError(
            f"{what}: cannot reach Redis ({exc}). Is the server running and the URL right?"
        ) from exc
    except RedisError as exc:
        raise RepositoryError(f"{what}: Redis failed: {exc}") from exc
