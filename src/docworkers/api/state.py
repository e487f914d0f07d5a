"""What every request handler reaches through ``request.app.state``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

from fastapi import Request

from docworkers.api.metrics import ApiMetrics
from docworkers.ingest.search import SearchService
from docworkers.ingest.vector_repository import VectorRepository
from docworkers.runtime import Runtime
from docworkers.settings import Settings
from docworkers.workers import WorkerPool


@dataclass(slots=True)
class ApiState:
    runtime: Runtime
    metrics: ApiMetrics
    pool: WorkerPool = field(default_factory=WorkerPool)
    _vectors: VectorRepository | None = None
    _search: SearchService | None = None
    _building: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    async def vectors(self) -> VectorRepository:
        """The runtime's vector store, opened in a thread on first use (opening a Chroma
        client connects to the server, which must not block the event loop)."""
        if self._vectors is None:
            async with self._building:
                if self._vectors is None:
                    self._vectors = await asyncio.to_thread(lambda: self.runtime.vectors)
        return self._vectors

    async def search_service(self) -> SearchService:
        """Built on first use, in a thread: it loads the embedding model."""
        if self._search is None:
            await self.vectors()
            async with self._building:
                if self._search is None:
                    self._search = await asyncio.to_thread(self.runtime.search_service)
        return self._search


def api_state(request: Request) -> ApiState:
    """FastAPI dependency: the state of the app serving ``request``."""
    return cast(ApiState, request.app.state.api)
