"""Logical collections, the physical Chroma collections behind them, and the lock of a rebuild.

Users, payloads and the document registry name *logical* collections. Each is stored in one
*physical* Chroma collection: the logical name itself until its first ``vector_reindex``, then
``<name>--v<N>``. The alias key ``<ns>:{documents}:alias:<name>`` holds the physical name; no
alias means "the name itself". Switching an alias is one Redis write, so a search sees the old
collection or the new one, never a mix. Names ending in ``--v<N>`` are reserved for physical
versions.

Rebuilding (``vector_reindex``) and dropping (``collection_delete``) a collection take the
collection's lock, ``<ns>:{documents}:lock:<name>``, owned by the job id: a rerun of the same
job takes it back at once, another job waits (a retryable error). The alias switch is fenced by
that lock and, for a job attempt, by the attempt's fence (:mod:`docworkers.ingest.fencing`): an
older attempt of the same job owns the same lock but can neither switch, renew nor release it.
Each rebuild attempt reserves a version of its own (``<ns>:{documents}:version:<name>``), so two
attempts never build into the same physical collection. Every key carries the registry's
``{documents}`` hash tag, so the scripts may touch alias, lock and fence together on Redis
Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import re
from types import TracebackType
from typing import TYPE_CHECKING, Self

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from docworkers.errors import ConfigurationError, RepositoryError, RetryableJobError
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.fencing import fenced
from docworkers.ingest.vector_repository import VectorRepository, validate_collection_name
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import RegistryKeys
from docworkers.queue.redis.scripts import register

if TYPE_CHECKING:
    from docworkers.ingest.fencing import AttemptFence

__all__ = [
    "CollectionAliases",
    "CollectionBusyError",
    "CollectionLock",
    "check_logical_name",
    "physical_collections",
    "physical_version",
    "resolve_collection",
    "versioned_name",
]

log = logging.getLogger("docworkers.ingest.jobs")

_LUA = "docworkers.ingest"  # the package of its scripts (ingest/lua)
VERSION_MARK = "--v"
LOCK_TTL = 120.0  # seconds; a holder renews every third of it while it works
_VERSIONED = re.compile(r"^(?P<base>.+)--v(?P<version>[0-9]+)$")


class CollectionBusyError(RetryableJobError):
    """Another job rebuilds or drops this collection (or our lock on it ran out): retry later."""

    code = "collection_busy"


def versioned_name(collection: str, version: int) -> str:
    """The physical collection of version ``version`` (>= 1) of ``collection``."""
    return validate_collection_name(f"{collection}{VERSION_MARK}{version}")


def physical_version(collection: str, physical: str) -> int | None:
    """0 if ``physical`` is ``collection`` itself, N for ``<collection>--vN``, else None."""
    if physical == collection:
        return 0
    match = _VERSIONED.match(physical)
    if match and match["base"] == collection:
        return int(match["version"])
    return None


def check_logical_name(name: str) -> str:
    """``name`` if it is a valid collection name that is not a reserved physical version."""
    validate_collection_name(name)
    if _VERSIONED.match(name):
        raise ConfigurationError(
            "collection",
            f"{name!r} ends in '--v<N>', which names a physical version kept by vector_reindex; "
            "use the collection's own name",
        )
    return name


def physical_collections(vectors: VectorRepository, collection: str) -> list[str]:
    """Every physical collection of ``collection`` in the vector store (oldest first)."""
    found = [
        (version, info.name)
        for info in vectors.list_collections()
        if (version := physical_version(collection, info.name)) is not None
    ]
    return [name for _, name in sorted(found)]


class CollectionAliases:
    """The alias and lock keys of logical collections, next to the document registry."""

    def __init__(self, client: Redis, *, keys: RegistryKeys, url: str = "redis") -> None:
        self.client = client
        self.keys = keys  # the document registry's
        self.url = url
        self._switch: AsyncScript = register(client, "switch_alias", _LUA)
        self._reserve: AsyncScript = register(client, "reserve_version", _LUA)

    @classmethod
    def for_documents(cls, documents: DocumentRepository) -> Self:
        return cls(documents.client, keys=documents.keys, url=documents.url)

    def errors(self, what: str, collection: str) -> RedisErrors:
        return RedisErrors(f"{what} of collection {collection!r}", url=self.url)

    async def target(self, collection: str) -> str | None:
        """The physical collection the alias names, or None when there is no alias."""
        with self.errors("alias", collection):
            value = await self.client.get(self.keys.alias(collection))
        return str(value) if value else None

    async def resolve(self, collection: str) -> str:
        """The physical collection that holds ``collection`` now."""
        return await self.target(collection) or collection

    async def switch(self, collection: str, physical: str | None, *, owner: str,
                     fence: AttemptFence | None = None) -> None:
        """Point the alias at ``physical`` (None removes it) in one write, fenced by the lock
        ``owner`` must hold (CollectionBusyError if it does not hold it any more) and by
        ``fence`` (LeaseLostError if a newer attempt of the job claimed it)."""
        keys, args = fenced([self.keys.alias(collection), self.keys.lock(collection)],
                            [owner, physical or ""], fence)
        with self.errors("alias", collection):
            done = await self._switch(keys=keys, args=args)
        if done < 0:
            assert fence is not None
            raise fence.lost(f"switching the alias of collection {collection!r}")
        if not done:
            raise CollectionBusyError(
                f"collection {collection!r}: the lock of {owner!r} ran out before the alias "
                "switch, so the switch was refused; the job will run again"
            )

    async def reserve_version(self, collection: str, current: int, *, owner: str,
                              fence: AttemptFence | None = None) -> int:
        """A physical version of ``collection`` for one rebuild attempt alone: above every
        version reserved before and above ``current`` (the one searches use). The caller must
        hold the collection's lock (CollectionBusyError) and its fence (LeaseLostError)."""
        keys, args = fenced([self.keys.version(collection), self.keys.lock(collection)],
                            [owner, current], fence)
        with self.errors("versions", collection):
            version = int(await self._reserve(keys=keys, args=args))
        if version < 0:
            assert fence is not None
            raise fence.lost(f"reserving a version of collection {collection!r}")
        if version == 0:
            raise CollectionBusyError(
                f"collection {collection!r}: the lock of {owner!r} ran out before a version "
                "was reserved; the job will run again"
            )
        return version

    def lock(self, collection: str, *, owner: str, ttl: float = LOCK_TTL,
             fence: AttemptFence | None = None) -> CollectionLock:
        return CollectionLock(self, collection, owner=owner, ttl=ttl, fence=fence)


class CollectionLock:
    """Exclusive right to rebuild or drop one logical collection; ``async with`` takes it,
    renews it in the background every ttl / 3, and releases it."""

    def __init__(self, aliases: CollectionAliases, collection: str, *, owner: str,
                 ttl: float = LOCK_TTL, fence: AttemptFence | None = None) -> None:
        if not owner:
            raise ConfigurationError("owner", "a lock needs a non-empty owner (the job id)")
        if ttl < 0.1:
            raise ConfigurationError("ttl", f"must be at least 0.1 seconds, got {ttl!r}")
        self.collection = collection
        self.owner = owner
        self.ttl = ttl
        self.fence = fence
        self.key = aliases.keys.lock(collection)
        self.lost = False
        self._errors = aliases.errors("lock", collection)
        self._client = aliases.client
        self._lock: AsyncScript = register(aliases.client, "lock", _LUA)
        self._unlock: AsyncScript = register(aliases.client, "unlock", _LUA)
        self._keeper: asyncio.Task[None] | None = None

    async def acquire(self) -> None:
        """Take the lock (or take it back, for a rerun of its owner); CollectionBusyError if
        another owner holds it, LeaseLostError if the fence no longer holds."""
        held = await self._call(renew_only=False)
        if held < 0:
            assert self.fence is not None
            raise self.fence.lost(f"taking the lock of collection {self.collection!r}")
        if not held:
            with self._errors:
                holder = await self._client.get(self.key)
            raise CollectionBusyError(
                f"collection {self.collection!r} is being rebuilt or dropped by job {holder!r}; "
                "this job runs again after a retry delay"
            )

    async def release(self) -> bool:
        """Release the lock if it is still ours; False if it had run out (or our attempt's
        fence no longer holds: the lock belongs to the newer attempt of the job)."""
        keys, args = fenced([self.key], [self.owner], self.fence)
        with self._errors:
            return int(await self._unlock(keys=keys, args=args)) == 1

    async def _call(self, *, renew_only: bool) -> int:
        """1 held, 0 held by another owner, -1 refused by the fence."""
        keys, args = fenced([self.key], [self.owner, round(self.ttl * 1000),
                                         "1" if renew_only else "0"], self.fence)
        with self._errors:
            return int(await self._lock(keys=keys, args=args))

    async def _keep(self) -> None:
        """Renew every ttl / 3 until cancelled; a failed renewal is logged and tried again."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                if await self._call(renew_only=True) != 1:
                    self.lost = True
                    log.warning("lock of collection %r ran out before it was renewed",
                                self.collection)
                    return
            except Exception as exc:  # a renewal loop must not die silently
                log.warning("renewing the lock of collection %r failed (%s); retrying",
                            self.collection, exc)

    async def __aenter__(self) -> Self:
        await self.acquire()
        self._keeper = asyncio.create_task(self._keep(), name=f"lock-{self.collection}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.wait([self._keeper])
            self._keeper = None
        try:
            await asyncio.shield(self.release())
        except RepositoryError as problem:
            log.warning("could not release the lock of collection %r (%s); it runs out in "
                        "%.0fs", self.collection, problem, self.ttl)


async def resolve_collection(documents: DocumentRepository, collection: str) -> str:
    """The physical Chroma collection that holds the logical ``collection`` now.

    Search and upload call this before touching the vector store; a collection that was never
    reindexed resolves to itself.
    """
    return await CollectionAliases.for_documents(documents).resolve(collection)
