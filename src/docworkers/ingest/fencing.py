"""Fencing of a job attempt's writes outside its queue: registry, locks, aliases, chunks.

A worker whose lease expired (stopped, stalled, cut off) can wake up after another worker took
its job over and finished it. The queue's own scripts already refuse its progress, completion
and failure report (each checks the job's fencing token). This module makes every *other* write
of an attempt conditional on the attempt still owning its job, so that a fenced-out attempt
changes nothing at all.

Redis writes (document registry, collection locks, aliases, version counter). The registry
lives under the ``{documents}`` hash tag and the job under its queue's tag, so one script may
not read the job and write a document on Redis Cluster. Instead each job has a *fence* next to
the registry, ``<ns>:{documents}:fence:<queue>:<job id>``, holding the token of its newest
attempt. An attempt first checks that it owns its job (the job is ``processing`` under its
token), then claims the fence with its token (tokens only move forward: an older attempt can
never claim it back). Every registry, lock and alias script of the attempt then checks the
fence and writes in one atomic step: once a newer attempt has claimed the fence, the older
attempt's writes are refused, whatever they are and however late they come. A write of the old
attempt that lands after the takeover but before the new attempt's claim happens-before
everything the new attempt does, and the new attempt rewrites all it owns (it registers the
document again first). The fence expires ``FENCE_TTL`` after the attempt's last fenced write (a
reindex renews it with its lock every 40 s); a late write after that finds no fence and is
refused too.

Chroma writes cannot be made atomic with a Redis check. Each one is preceded by a check that
the attempt still owns its job (:meth:`AttemptFence.check`), so an attempt that wakes up after
the takeover stops before its next write. What remains is a write already past its check when
the process stopped. Such a late write is harmless by construction:

* An upload attempt writes ``{document_id}:{index}`` chunks; the document id comes from the
  file's bytes and collection, and the chunks, texts and metadata from the payload, which
  both attempts of one job share (chunking and the local enricher are deterministic). A late
  upsert therefore writes what the owning attempt wrote, and its clean-up deletes only indexes
  at or beyond its own chunk count, which is the owner's: never one of the owner's chunks.
  An enricher that is not deterministic (an LLM) can leave its own questions on the chunks;
  the embeddings can differ in the last bits when batches were composed differently.
* The collection an upload writes to was named by the alias at its store stage. Versions only
  grow, so a late write into an older physical collection lands in one that searches no longer
  use (at worst recreating one a reindex dropped: left empty of searchers, dropped by the next
  reindex or ``collection_delete``).
* A ``vector_reindex`` attempt builds into a version reserved for it alone (the version
  counter, fenced), drops only its own unfinished version, and drops older versions only after
  its own fenced alias switch: a late drop never touches a collection another attempt builds
  or searches use.
* ``document_delete``, ``collection_delete`` and ``metadata_extract`` repeat what their owning
  attempt did (deleting, or writing the same deterministic metadata). Only if another job
  re-created or re-wrote the same document in the moment between such a late write's check and
  its request could the late write undo that: Chroma has no conditional write that could
  refuse it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from docworkers.errors import LeaseLostError

if TYPE_CHECKING:
    from docworkers.ingest.document_repository import DocumentRepository
    from docworkers.workers.context import JobContext

__all__ = ["FENCE_TTL", "AttemptFence", "claim_fence", "fenced"]

FENCE_TTL = 24 * 3600.0  # seconds after an attempt's last fenced write (one key per job)


@dataclass(frozen=True, slots=True)
class AttemptFence:
    """One job attempt's right to write: its fence key and token, and the job ownership check."""

    key: str  # <ns>:{documents}:fence:<queue>:<job id>
    token: int  # the attempt's fencing token (Job.token)
    job_id: str
    owns: Callable[[], Awaitable[bool]]  # the job is still processing under our token

    async def check(self, what: str = "its next write") -> None:
        """Raise LeaseLostError unless the attempt still owns its job: call it right before
        each write that no Redis script can fence (the vector store)."""
        if not await self.owns():
            raise self.lost(what)

    def lost(self, what: str) -> LeaseLostError:
        """The error for a write the fence refused."""
        return LeaseLostError(
            f"job {self.job_id!r}: attempt with token {self.token} no longer owns the job (its "
            f"lease expired and another worker took it over); {what} was refused"
        )


def fenced(keys: Sequence[str], args: Sequence[Any], fence: AttemptFence | None
           ) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of a fenced script (``ingest/lua``): the fence, if any, is the last key,
    and the first two arguments are its token and ttl ms ('' and 0 without a fence)."""
    if fence is None:
        return list(keys), ["", 0, *args]
    return [*keys, fence.key], [fence.token, round(FENCE_TTL * 1000), *args]


async def claim_fence(ctx: JobContext, documents: DocumentRepository) -> AttemptFence:
    """Claim the job's fence for the attempt of ``ctx``; LeaseLostError if it does not own
    the job or a newer attempt claimed the fence already. Call it before the attempt's first
    write and pass the fence to every writer."""
    fence = AttemptFence(key=documents.keys.fence(ctx.queue, ctx.job.id), token=ctx.job.token,
                         job_id=ctx.job.id, owns=ctx.owns)
    await fence.check("claiming its fence")
    if not await documents.claim_fence(fence):
        raise fence.lost("claiming its fence")
    return fence
