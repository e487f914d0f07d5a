"""An upload worker process for the fenced-out test, configured from DOCWORKERS_* variables.

``python fenced_worker_proc.py NAME [GATE]``: with GATE (a Redis list key) the worker's first
embedding call pushes ``reached`` onto ``GATE:reached`` and then waits until something is pushed
onto GATE, so a test can stop the process at a known point (the upload at 50 %, embedding)
instead of racing it. From then on its heartbeats also wait, until something is pushed onto
``GATE:beat``: after SIGCONT the attempt's next write then comes before its worker's next
heartbeat (which would see the takeover and cancel the attempt first, the other order). The
model behind the gate is the real one. Logs go to stdout.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from docworkers.ingest.embedding import Embedder
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.queue import RedisJobRepository, RepositoryConfig
from docworkers.queue.redis.clients import sync_client
from docworkers.runtime import Runtime
from docworkers.settings import Settings


class GatedEmbedder:
    """The real model; its first call waits at the gate (a blocking Redis pop, in the thread
    the batcher runs the model in)."""

    def __init__(self, inner: Embedder, url: str, gate: str) -> None:
        self.inner = inner
        self.gate = gate
        self.client = sync_client(url)
        self.reached = False
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self.reached:
            self.reached = True
            self.client.rpush(f"{self.gate}:reached", "reached")
            while not self.client.blpop([self.gate], timeout=1):
                pass
        return self.inner.embed(texts)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class HeldHeartbeats(RedisJobRepository):
    """Heartbeats wait for ``GATE:beat`` once the embedder reached its gate."""

    embedder: GatedEmbedder
    released = False

    async def heartbeat(self, *args: Any, **kwargs: Any) -> tuple[list[str], list[str]]:
        while self.embedder.reached and not self.released:
            self.released = bool(await self.client.blpop([f"{self.embedder.gate}:beat"],
                                                         timeout=1))
        return await super().heartbeat(*args, **kwargs)


async def main(name: str, gate: str | None) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(levelname)s %(name)s %(message)s")
    settings = Settings.from_env(env_file=None)
    async with Runtime(settings) as runtime:
        if gate is None:
            worker = runtime.upload_worker(name)
        else:
            embedder = GatedEmbedder(runtime.embedder, runtime.redis_url, gate)
            gated: Any = embedder
            runtime._embedder = gated  # Runtime builds its services around it on first use
            jobs = HeldHeartbeats.from_url(runtime.redis_url, RepositoryConfig(
                queue=settings.queue, default_max_retries=settings.max_retries))
            jobs.embedder = embedder
            worker = UploadWorker(UploadWorkerConfig(
                worker=runtime.upload_worker_config(name), job_repo=jobs,
                document_repo=runtime.documents, vector_repo=runtime.vectors,
                services=runtime.services))
        await worker.start()
        print("ready", flush=True)
        await worker.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
