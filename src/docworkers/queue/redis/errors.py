"""The one translator of redis-py errors into docworkers errors.

Every component that talks to Redis (the job repository and its waiter, the scheduler, the
limiters, the document registry, collection aliases and locks) runs its commands inside a
:class:`RedisErrors`, so a caller sees one kind of error whatever the component:
``RepositoryConnectionError`` when the server cannot be reached (retried by the worker and by
``docworkers worker`` at start, 503 in the HTTP API), ``RepositoryError`` for anything else
Redis refuses. Both name what needed Redis, the server's URL when known, and what to check.
"""

from __future__ import annotations

from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import (
    AskError,
    ClusterDownError,
    MasterDownError,
    MovedError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from docworkers.errors import DocworkersError, RepositoryConnectionError, RepositoryError

__all__ = ["RedisErrors", "redacted"]


def redacted(url: str) -> str:
    """``url`` with its password shown as ``***``: messages name the server they could not
    reach, and a log or a terminal is no place for its password (the local stack's has one)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisErrors:
    """``with RedisErrors("rate limit 'x'", url=...): ...`` raises redis-py's errors (and
    socket errors) as RepositoryConnectionError / RepositoryError.

    One object serves any number of blocks, nested or concurrent (it keeps no state), in sync
    and async code alike: ``with`` also catches what an ``await`` inside it raises. Errors of
    docworkers itself pass through untouched.
    """

    __slots__ = ("url", "what")

    def __init__(self, what: str = "", *, url: str = "") -> None:
        self.what = what  # e.g. "rate limit 'embed'"; "" for the job repository itself
        self.url = redacted(url)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, RedisError | OSError) and not isinstance(exc, DocworkersError):
            raise self.translate(exc) from exc

    def translate(self, exc: BaseException) -> RepositoryError:
        """The docworkers error for ``exc`` (also for error replies read from a pipeline)."""
        head = f"{self.what}: " if self.what else ""
        where = f" at {self.url}" if self.url else ""
        if _no_writes_now(exc):
            return RepositoryConnectionError(
                f"{head}Redis{where} cannot take writes now: {str(exc).rstrip('.')}. Is a "
                "failover under way, or a replica missing (min-replicas-to-write)?"
            )
        if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
            return RepositoryConnectionError(
                f"{head}cannot reach Redis{where}: {str(exc).rstrip('.')}. Is the server "
                "running and the URL (DOCWORKERS_REDIS_URL) right?"
            )
        return RepositoryError(f"{head}Redis{where} failed: {exc}")


def _no_writes_now(exc: BaseException) -> bool:
    """An error reply meaning "not now" rather than "never": a master that has too few replicas
    in sync (NOREPLICAS), a replica cut off from its master, or one not yet promoted; on a
    cluster, a node that no longer (MOVED, ASK) or not yet (TRYAGAIN) serves the slot, or a
    cluster without a primary for it (CLUSTERDOWN, during a failover) or whose topology the
    client cannot read now. Nothing was written (the
    first write of a script is refused, so it wrote nothing either): the caller may send it
    again, as after a lost connection."""
    return isinstance(exc, ReadOnlyError | MasterDownError | ClusterDownError | MovedError
                      | AskError | TryAgainError | SlotNotCoveredError) \
        or _no_cluster_now(exc) \
        or str(exc).startswith("NOREPLICAS")


def _no_cluster_now(exc: BaseException) -> bool:
    """redis-py's cluster client could not read the topology: no node answered, or the slots
    are not all served (a failover under way)."""
    return type(exc) is RedisClusterException and (
        "cannot be connected" in str(exc) or "not covered" in str(exc))
