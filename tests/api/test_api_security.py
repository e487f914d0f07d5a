"""The bearer token, the error format, health checks and failure mapping (no stack traces)."""

from __future__ import annotations

import logging
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from api_support import running_api, upload_files

from docworkers.errors import InvalidStateError, JobNotFoundError
from docworkers.settings import Settings

TOKEN = "s3cret-token"
PROTECTED = [
    ("GET", "/api/jobs"), ("GET", "/api/jobs/stats"), ("GET", "/api/jobs/abc"),
    ("POST", "/api/jobs/abc/cancel"), ("POST", "/api/jobs/abc/retry"),
    ("GET", "/api/jobs/abc/events"), ("GET", "/api/workers"), ("GET", "/api/dlq"),
    ("GET", "/api/dlq/abc"), ("POST", "/api/dlq/abc/requeue"), ("DELETE", "/api/dlq"),
    ("GET", "/api/documents"), ("GET", "/api/documents/abc"), ("DELETE", "/api/documents/abc"),
    ("GET", "/api/collections"), ("DELETE", "/api/collections/abc"), ("POST", "/api/search"),
    ("POST", "/api/documents/upload"), ("GET", "/api/config"), ("GET", "/metrics"),
]


def stored_nothing(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_every_data_endpoint_needs_the_token(settings: Settings, embedder: Any) -> None:
    async with running_api(replace(settings, api_token=TOKEN), embedder) as api:
        for method, path in PROTECTED:
            response = await api.request(method, path)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"
            wrong = await api.request(method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            basic = await api.request(method, path, headers={"Authorization": f"Basic {TOKEN}"})
            assert basic.status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert (await api.get("/api/jobs", headers=good)).status_code == 200
        assert (await api.get("/metrics", headers=good)).status_code == 200
        upload = await api.post("/api/documents/upload", headers=good,
                                files=upload_files("a.txt", b"some text to ingest\n"))
        assert upload.status_code == 202
        for path in ("/healthz", "/readyz", "/", "/static/app.js", "/docs", "/openapi.json"):
            assert (await api.get(path)).status_code == 200, path


async def test_unauthorized_upload_is_refused_before_the_body_is_stored(
        settings: Settings, embedder: Any) -> None:
    async with running_api(replace(settings, api_token=TOKEN), embedder) as api:
        response = await api.post("/api/documents/upload",
                                  files=upload_files("a.txt", b"text " * 1000))
        assert response.status_code == 401
    assert stored_nothing(Path(settings.storage_dir))


async def test_dashboard_and_openapi(settings: Settings, embedder: Any) -> None:
    async with running_api(settings, embedder) as api:
        page = await api.get("/")
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'id="upload-form"' in page.text and "/static/app.js" in page.text
        assert "localStorage" in (await api.get("/static/app.js")).text
        assert (await api.get("/static/app.css")).status_code == 200
        schema = (await api.get("/openapi.json")).json()
        paths = set(schema["paths"])
        assert {"/api/documents/upload", "/api/jobs/{job_id}/events", "/api/search", "/api/dlq",
                "/api/collections/{name}", "/healthz", "/readyz", "/metrics"} <= paths
        form = schema["paths"]["/api/documents/upload"]["post"]["requestBody"]["content"]
        assert "chunk_size" in form["multipart/form-data"]["schema"]["properties"]
        assert "HTTPBearer" in schema["components"]["securitySchemes"]


async def test_health_and_readiness(api: Any) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"redis": "ok", "chroma": "ok"}}


async def test_redis_down_is_503_without_leaking_the_url(settings: Settings, embedder: Any,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    async with running_api(replace(settings, redis_url=url), embedder) as api:
        assert (await api.get("/healthz")).status_code == 200
        ready = await api.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["checks"] == {"redis": "unreachable", "chroma": "ok"}
        assert body["error"]["code"] == "not_ready" and "redis" in body["error"]["message"]
        for path in ("/api/jobs", "/api/jobs/stats", "/api/documents"):
            response = await api.get(path)
            assert response.status_code == 503, path
            assert response.json()["error"]["code"] == "redis_unavailable"
            assert "hunter2" not in response.text and "127.0.0.1" not in response.text
        metrics = await api.get("/metrics")
        assert metrics.status_code == 200 and "docworkers_redis_up 0.0" in metrics.text
    assert "cannot reach Redis" in caplog.text  # the details went to the log


async def test_library_errors_map_to_statuses_and_unexpected_ones_hide_details(
        settings: Settings, embedder: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    async with running_api(settings, embedder, raise_app_exceptions=False) as api:
        jobs = api.runtime.jobs

        async def raise_(error: BaseException) -> Any:
            raise error

        cases: list[tuple[BaseException, int, str]] = [
            (JobNotFoundError("no job 'x'"), 404, "not_found"),
            (InvalidStateError("job is running"), 409, "invalid_state"),
            (RuntimeError("secret internals at /srv/app"), 500, "internal_error"),
        ]
        for error, status, code in cases:
            monkeypatch.setattr(jobs, "stats", lambda error=error: raise_(error))
            with caplog.at_level(logging.ERROR, logger="docworkers.api"):
                response = await api.get("/api/jobs/stats")
            assert response.status_code == status
            assert response.json()["error"]["code"] == code
            assert "Traceback" not in response.text
        assert "secret" not in response.text and "/srv/app" not in response.text
        assert "secret internals" in caplog.text  # logged, with its traceback


async def test_unknown_routes_are_json_404(api: Any) -> None:
    response = await api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not Found"}}
