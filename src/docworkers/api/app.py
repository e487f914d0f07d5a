"""The FastAPI application: ``create_app(runtime)``, or ``create_app_from_env()`` for
``uvicorn --factory docworkers.api.app:create_app_from_env``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from docworkers.api import documents, jobs, system
from docworkers.api.documents import UPLOAD_PATH
from docworkers.api.errors import ErrorResponse, install_error_handlers
from docworkers.api.guard import RequestGuard
from docworkers.api.inprocess import build_pool
from docworkers.api.metrics import ApiMetrics
from docworkers.api.security import LOOPBACK_NAMES, HostPolicy
from docworkers.api.state import ApiState
from docworkers.errors import ConfigurationError
from docworkers.runtime import Runtime
from docworkers.settings import Settings, parse_allowed_hosts

log = logging.getLogger("docworkers.api")

DESCRIPTION = """\
Upload documents, follow their ingestion jobs, search what was ingested, and run the queue.

When the server has API tokens (`DOCWORKERS_API_TOKEN`, `DOCWORKERS_API_TOKENS`), every
endpoint except `/healthz`, `/readyz` and the dashboard page needs the header
`Authorization: Bearer <token>`, with a token whose scope covers the request: `read` for reads
and search, `write` also for uploads and job submission, `admin` for everything (deletes, the
dead-letter queue, cancel / retry / requeue). The `Host` header must name this server
(`DOCWORKERS_ALLOWED_HOSTS`), and a state-changing request from a page of another site is
refused.
Errors are JSON: `{"error": {"code", "message", "fields"?}}`.
"""


def _version() -> str:
    try:
        return version("docworkers")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def create_app(runtime: Runtime, *, with_workers: int = 0,
               allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """The API on an opened ``runtime`` (the caller opens and closes it).

    ``with_workers`` upload workers run inside the server process, started and stopped with
    the app's lifespan (the other job types run in `docworkers worker`).
    ``allowed_hosts``: the ``Host`` names to answer to (default: DOCWORKERS_ALLOWED_HOSTS, else
    the loopback names; ``docworkers serve`` passes the names of the address it binds).
    """
    return _build(runtime, with_workers=with_workers, owns_runtime=False,
                  allowed_hosts=allowed_hosts)


def create_app_from_env(*, with_workers: int = 0, env_file: str | None = ".env") -> FastAPI:
    """The API configured from DOCWORKERS_* variables; its lifespan opens and closes the
    Runtime (and so starts a private Redis when DOCWORKERS_REDIS_URL is unset)."""
    settings = Settings.from_env(env_file=env_file)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return _build(Runtime(settings), with_workers=with_workers, owns_runtime=True)


def _build(runtime: Runtime, *, with_workers: int, owns_runtime: bool,
           allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    if isinstance(with_workers, bool) or not isinstance(with_workers, int) or with_workers < 0:
        raise ConfigurationError("with_workers", "must be a whole number, 0 or more")
    hosts = HostPolicy.of(allowed_hosts if allowed_hosts is not None
                          else parse_allowed_hosts(runtime.settings.allowed_hosts)
                          or LOOPBACK_NAMES)
    state = ApiState(runtime=runtime, metrics=ApiMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owns_runtime:
            await runtime.open()
        try:
            if with_workers:
                state.pool = build_pool(runtime, state.metrics, with_workers)
                services = runtime.services
                state.metrics.watch_batchers(lambda: [services.batcher.stats])
                await state.pool.start_all()
                log.info("started %d upload worker(s) in the API process", with_workers)
            try:
                yield
            finally:
                await state.pool.stop_all()
        finally:
            if owns_runtime:
                await runtime.close()

    app = FastAPI(title="docworkers", version=_version(), description=DESCRIPTION,
                  lifespan=lifespan,
                  responses={status: {"model": ErrorResponse}
                             for status in (400, 401, 403, 404, 408, 409, 413, 422, 503)})
    app.state.api = state
    install_error_handlers(app)
    app.include_router(system.open_router)
    app.include_router(system.router)
    app.include_router(jobs.router)
    app.include_router(documents.router)
    app.mount("/static", StaticFiles(directory=system.STATIC_DIR), name="static")
    # Outermost but for Starlette's error middleware: refusals happen before routing and auth.
    app.add_middleware(RequestGuard, hosts=hosts, streaming_paths=(UPLOAD_PATH,))
    return app
