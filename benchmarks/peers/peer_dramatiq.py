"""dramatiq: RedisBroker, one worker process with its default 8 threads."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import dramatiq
import redis
from _common import URL, Enqueue, job_sync, main
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)
client = redis.Redis.from_url(URL)


@dramatiq.actor
def noop(sent: float) -> None:
    job_sync(client, sent)


@asynccontextmanager
async def producer() -> AsyncIterator[Enqueue]:
    async def enqueue(sent: float) -> None:
        noop.send(sent)

    yield enqueue


def worker() -> None:
    """What ``dramatiq peer_dramatiq --processes 1`` runs, without its process supervisor."""
    signal.signal(signal.SIGTERM, lambda *_: None)
    running = dramatiq.Worker(broker, worker_threads=8)
    running.start()
    signal.sigwait({signal.SIGTERM})
    running.stop()


if __name__ == "__main__":
    main(producer, worker, version("dramatiq"))
