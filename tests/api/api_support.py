"""Helpers shared by the API tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from docworkers.api import create_app
from docworkers.ingest.embedding import Embedder
from docworkers.runtime import Runtime
from docworkers.settings import Settings

PAPER = "pdf/layout-parser-paper-fast.pdf"
PHRASE = "A generalized learning-based framework dramatically reduces the need"
TERMINAL = {"completed", "failed", "cancelled", "dead"}


class SharedModelRuntime(Runtime):
    """A Runtime that uses the test session's loaded model instead of loading its own."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        super().__init__(settings)
        self._shared_embedder = embedder

    @property
    def embedder(self) -> Embedder:
        return self._shared_embedder


class ApiClient(httpx.AsyncClient):
    """An httpx client on the in-process app, with the Runtime behind it."""

    runtime: Runtime


@asynccontextmanager
async def running_api(settings: Settings, embedder: Embedder, *, with_workers: int = 0,
                      raise_app_exceptions: bool = True) -> AsyncIterator[ApiClient]:
    """The app with its lifespan running, and a client talking to it in-process."""
    runtime = SharedModelRuntime(settings, embedder)
    await runtime.open()
    try:
        app = create_app(runtime, with_workers=with_workers)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
            # localhost: the app answers only to the loopback names unless told otherwise.
            async with ApiClient(transport=transport, base_url="http://localhost",
                                 timeout=60) as client:
                client.runtime = runtime
                yield client
    finally:
        await runtime.close()


def upload_files(name: str, content: bytes, content_type: str = "application/octet-stream"
                 ) -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, content, content_type)}


async def wait_for_job(client: httpx.AsyncClient, job_id: str, timeout: float = 60) -> Any:
    async def poll() -> Any:
        while True:
            job = (await client.get(f"/api/jobs/{job_id}")).json()
            if job["status"] in TERMINAL:
                return job
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """(event name, decoded data) for each event of a text/event-stream body."""
    events = []
    for block in text.split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events
