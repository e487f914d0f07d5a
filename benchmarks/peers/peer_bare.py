"""No queue at all: redis-py's RPUSH of the enqueue time, one BLPOP loop running the job.

Not a peer to beat on every column but the anchor of the table: what one Python producer and
one Python worker cost through one Redis list with nothing in between (no job record, lease,
retry, fencing token or event). Its pickup is the floor every system's pickup stands on here
(two processes woken through the server); its drain is one round trip per job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import redis
import redis.asyncio
from _common import URL, Enqueue, job_sync, main

LIST = "peers:bare"


@asynccontextmanager
async def producer() -> AsyncIterator[Enqueue]:
    client = redis.asyncio.Redis.from_url(URL)

    async def enqueue(sent: float) -> None:
        await client.rpush(LIST, repr(sent))

    try:
        yield enqueue
    finally:
        await client.aclose()


def worker() -> None:
    """Until SIGTERM (its default action ends the process)."""
    client = redis.Redis.from_url(URL)
    while True:
        got = client.blpop([LIST], timeout=1)
        if got is not None:
            job_sync(client, float(got[1]))


if __name__ == "__main__":
    main(producer, worker, f"redis-py {version('redis')}")
