"""The FastAPI application: ``create_app(runtime)``, or ``create_app_from_env()`` for
``uvicorn --factory docworkers.api.app:create_app_from_env``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from docworkers.api import documents, history, jobs, queues, system
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


#: Where the API docs' own files are served (open like /docs; RequestGuard still applies).
DOCS_ASSETS = "/docs-assets"


def _install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) from files the fastapi-offline package ships: FastAPI's own page
    loads them from a CDN, so it was blank on a machine offline. No ``/redoc``: ReDoc's bundle
    still loads its logo from redocly's CDN."""
    assets = str(files("fastapi_offline") / "static")
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = base(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # No validator badge: it would send the schema's address to swagger.io.
            swagger_ui_parameters={"validatorUrl": None})


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
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  responses={status: {"model": ErrorResponse}
                             for status in (400, 401, 403, 404, 408, 409, 413, 422, 503)})
    app.state.api = state
    install_error_handlers(app)
    app.include_router(system.open_router)
    app.include_router(system.router)
    app.include_router(jobs.router)
    app.include_router(documents.router)
    app.include_router(queues.router)
    app.include_router(history.router)
    app.mount("/static", StaticFiles(directory=system.STATIC_DIR), name="static")
    _install_docs(app)
    # Outermost but for Starlette's error middleware: refusals happen before routing and auth.
    app.add_middleware(RequestGuard, hosts=hosts, streaming_paths=(UPLOAD_PATH,))
    return app
