"""docworkers with the synchronous producer, ``SyncJobProducer.enqueue`` (no event loop on its
path; the loop of the harness only calls it); the worker is peer_docworkers.py's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from _common import URL, Enqueue, main
from peer_docworkers import CONFIG, worker

from docworkers.queue import SyncJobProducer


@asynccontextmanager
async def producer() -> AsyncIterator[Enqueue]:
    with SyncJobProducer.from_url(URL, CONFIG) as jobs:

        async def enqueue(sent: float) -> None:
            jobs.enqueue("noop", {"sent": sent})

        yield enqueue


if __name__ == "__main__":
    main(producer, worker, version("docworkers"))
