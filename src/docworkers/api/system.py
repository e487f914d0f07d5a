"""Health, readiness, metrics and the dashboard."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, JSONResponse, Response

from docworkers.api.errors import error_body
from docworkers.api.metrics import CONTENT_TYPE_LATEST
from docworkers.api.security import require_token
from docworkers.api.state import ApiState, api_state
from docworkers.errors import RepositoryError
from docworkers.queue import QueueStats
from docworkers.queue.history import HistoryReader, Totals

log = logging.getLogger("docworkers.api")

STATIC_DIR = Path(__file__).parent / "static"
REDIS_TIMEOUT = 3.0
CHROMA_TIMEOUT = 5.0
# The dashboard loads only its own files and talks only to this server; data it shows
# (file names, passages) is inserted as text, and this policy backs that up.
_DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

open_router = APIRouter()
router = APIRouter(dependencies=[Depends(require_token)])
State = Annotated[ApiState, Depends(api_state)]


@open_router.get("/healthz", tags=["health"], summary="The process is up (no dependencies)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@open_router.get("/readyz", tags=["health"], summary="Redis and Chroma are reachable",
                 responses={503: {"description": "a dependency is unreachable"}})
async def readyz(state: State) -> JSONResponse:
    runtime = state.runtime

    async def redis() -> None:
        await asyncio.wait_for(runtime.jobs.ping(), REDIS_TIMEOUT)

    async def chroma() -> None:
        async def ping() -> None:
            vectors = await state.vectors()
            await asyncio.to_thread(vectors.ping)

        await asyncio.wait_for(ping(), CHROMA_TIMEOUT)

    names = ("redis", "chroma")
    results = await asyncio.gather(redis(), chroma(), return_exceptions=True)
    checks: dict[str, str] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            # Details (URLs, paths) go to the log: this endpoint needs no token.
            log.warning("readiness: %s is unreachable: %s: %s", name, type(result).__name__,
                        result)
            checks[name] = "unreachable"
        else:
            checks[name] = "ok"
    failed = [name for name in names if checks[name] != "ok"]
    if failed:
        body: dict[str, Any] = error_body("not_ready", f"not ready: {' and '.join(failed)} "
                                                       f"{'is' if len(failed) == 1 else 'are'} "
                                                       "unreachable")
        return JSONResponse({**body, "status": "unavailable", "checks": checks},
                            status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", tags=["health"], summary="Prometheus metrics",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(state: State) -> Response:
    stats: QueueStats | None = None
    totals: Totals | None = None
    try:
        stats = await state.runtime.queues.stats()  # every job type's queue
        totals = await HistoryReader.of(state.runtime.queues.holding()).totals()
    except RepositoryError as exc:
        log.warning("metrics: cannot read queue statistics: %s", exc)
    return Response(state.metrics.render(stats, totals), media_type=CONTENT_TYPE_LATEST)


@open_router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    # The page itself holds no data; its API calls carry the token the user enters.
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                        headers=_DASHBOARD_HEADERS)
