"""The bearer token, the error format, health checks and failure mapping (no stack traces)."""

from __future__ import annotations

import logging
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from api_support import running_api, upload_files

from docworkers.errors import ConfigurationError, InvalidStateError, JobNotFoundError
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
        assert 'import "./jobs.js"' in (await api.get("/static/app.js")).text
        core = await api.get("/static/core.js")  # the token lives in the browser's storage
        assert core.headers["content-type"].startswith("text/javascript")
        assert "localStorage" in core.text
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


# -- scoped tokens ------------------------------------------------------------------------------

READ, WRITE, ADMIN = "r-token-0123456789", "w-token-0123456789", "a-token-0123456789"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_scoped_tokens(settings: Settings, embedder: Any) -> None:
    scoped = replace(settings, api_tokens=f"read:{READ}, write:{WRITE}", api_token=ADMIN)
    async with running_api(scoped, embedder) as api:
        note = upload_files("a.txt", b"gliders ride rising air\n")
        metadata_job = {"type": "metadata_extract", "payload": {"collection": "docs"}}
        delete_job = {"type": "document_delete", "payload": {"document_id": "abc"}}
        # read: everything that reads, nothing that writes
        for method, path in (("GET", "/api/jobs"), ("GET", "/api/workers"), ("GET", "/metrics"),
                             ("GET", "/api/dlq"), ("GET", "/api/config")):
            assert (await api.request(method, path, headers=bearer(READ))).status_code == 200
        searched = await api.post("/api/search", headers=bearer(READ), json={"query": "air"})
        assert searched.status_code == 200
        for call in (api.post("/api/documents/upload", headers=bearer(READ), files=note),
                     api.post("/api/jobs", headers=bearer(READ), json=metadata_job),
                     api.delete("/api/dlq", headers=bearer(READ)),
                     api.delete("/api/documents/abc", headers=bearer(READ))):
            refused = await call
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "forbidden"
            assert "read scope" in refused.json()["error"]["message"]
        assert (await api.get("/api/jobs", headers=bearer(READ))).json()["count"] == 0
        assert stored_nothing(Path(settings.storage_dir))
        # write: uploads and job submission, but no deletes, no queue controls
        upload = await api.post("/api/documents/upload", headers=bearer(WRITE), files=note)
        assert upload.status_code == 202
        job_id = upload.json()["job_id"]
        assert (await api.post("/api/jobs", headers=bearer(WRITE),
                               json=metadata_job)).status_code == 202
        for call in (api.post("/api/jobs", headers=bearer(WRITE), json=delete_job),
                     api.post(f"/api/jobs/{job_id}/cancel", headers=bearer(WRITE)),
                     api.delete("/api/dlq", headers=bearer(WRITE)),
                     api.delete("/api/collections/documents", headers=bearer(WRITE))):
            refused = await call
            assert refused.status_code == 403, refused.text
            assert "admin scope" in refused.json()["error"]["message"]
        assert (await api.get(f"/api/jobs/{job_id}", headers=bearer(READ))).json()["status"] \
            == "queued"
        # admin (DOCWORKERS_API_TOKEN keeps working as the admin token): everything
        assert (await api.post(f"/api/jobs/{job_id}/cancel",
                               headers=bearer(ADMIN))).json()["cancel"] == "cancelled"
        assert (await api.post("/api/jobs", headers=bearer(ADMIN),
                               json=delete_job)).status_code == 202
        assert (await api.delete("/api/dlq", headers=bearer(ADMIN))).status_code == 200
        assert (await api.get("/api/jobs", headers=bearer(ADMIN))).json()["count"] == 3


async def test_every_route_has_a_deliberate_scope(api: Any) -> None:
    """A new state-changing endpoint is admin-only until the table says otherwise: this list
    makes adding one a decision."""
    from docworkers.api.security import Scope, required_scope

    paths = (await api.get("/openapi.json")).json()["paths"]
    scopes = {(method.upper(), path): required_scope(method.upper(), path).name.lower()
              for path, operations in paths.items() for method in operations
              if method not in ("get", "head")}
    assert scopes == {
        ("POST", "/api/search"): "read",
        ("POST", "/api/documents/upload"): "write",
        ("POST", "/api/jobs"): "write",
        ("POST", "/api/jobs/{job_id}/cancel"): "admin",
        ("POST", "/api/jobs/{job_id}/retry"): "admin",
        ("DELETE", "/api/jobs/{job_id}"): "admin",
        ("POST", "/api/dlq/{job_id}/requeue"): "admin",
        ("DELETE", "/api/dlq"): "admin",
        ("DELETE", "/api/documents/{document_id}"): "admin",
        ("DELETE", "/api/collections/{name}"): "admin",
        ("POST", "/api/queues/{queue}/pause"): "admin",
        ("POST", "/api/queues/{queue}/resume"): "admin",
        ("POST", "/api/queues/{queue}/jobs/{job_id}/run-now"): "admin",
        ("POST", "/api/dead/retry"): "admin",
        ("POST", "/api/dead/delete"): "admin",
    }
    assert required_scope("PATCH", "/api/anything-new") is Scope.ADMIN


def test_token_settings_never_quote_a_token() -> None:
    for raw in ("reader:hunter2-secret", "read:hunter2 secret", "read:hunter2-secret,"
                "admin:hunter2-secret"):
        with pytest.raises(ConfigurationError) as info:
            Settings(api_tokens=raw)
        assert info.value.field == "api_tokens" and "hunter2" not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        Settings(api_tokens="read:hunter2-secret", api_token="hunter2-secret")
    assert "hunter2" not in str(info.value)


# -- Host, Origin ------------------------------------------------------------------------------


async def test_host_header_must_name_this_server(settings: Settings, embedder: Any) -> None:
    async with running_api(settings, embedder) as api:
        for host in ("localhost:8000", "127.0.0.1", "[::1]:80"):
            assert (await api.get("/api/jobs", headers={"Host": host})).status_code == 200
        for host in ("rebound.example", "localhost.evil.example", "127.0.0.2"):
            refused = await api.get("/api/jobs", headers={"Host": host})
            assert refused.status_code == 400, host
            assert refused.json()["error"]["code"] == "invalid_host"
            assert host not in refused.text
    named = replace(settings, allowed_hosts="docs.example.com, .corp.example")
    async with running_api(named, embedder) as api:
        for host, status in (("docs.example.com", 200), ("DOCS.example.com:443", 200),
                             ("a.corp.example", 200), ("corp.example", 200),
                             ("localhost", 400), ("example.com", 400)):
            assert (await api.get("/healthz", headers={"Host": host})).status_code == status, \
                host


async def test_cross_site_writes_are_refused_without_a_token(settings: Settings,
                                                             embedder: Any) -> None:
    assert settings.api_token is None and settings.api_tokens is None  # the default
    async with running_api(settings, embedder) as api:
        note = upload_files("a.txt", b"gliders ride rising air\n")
        evil = [{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                {"Origin": "http://evil.example"}, {"Origin": "null"},
                {"Sec-Fetch-Site": "same-site"}, {"Origin": "http://localhost:9999"}]
        for headers in evil:
            refused = await api.post("/api/documents/upload", headers=headers, files=note)
            assert refused.status_code == 403, headers
            assert refused.json()["error"]["code"] == "cross_site_request"
            assert (await api.post("/api/jobs/abc/cancel", headers=headers)).status_code == 403
            assert (await api.delete("/api/dlq", headers=headers)).status_code == 403
        assert (await api.get("/api/jobs")).json()["count"] == 0
        assert stored_nothing(Path(settings.storage_dir))
        # a cross-site page may still be refused reading by CORS, but GETs are not refused here
        assert (await api.get("/api/jobs", headers=evil[0])).status_code == 200
        # the dashboard (same origin) and non-browser clients (no Origin) go through
        same = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
        assert (await api.post("/api/documents/upload", headers=same,
                               files=note)).status_code == 202
        assert (await api.post("/api/documents/upload", files=note)).status_code == 202


def test_bind_decision() -> None:
    from docworkers.api.security import bind_refusal, default_allowed_hosts, is_loopback

    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback(host), host
        assert bind_refusal(host, has_token=False, insecure_no_auth=False) is None
    for host in ("0.0.0.0", "::", "10.1.2.3", "myhost.example"):
        assert not is_loopback(host), host
        refusal = bind_refusal(host, has_token=False, insecure_no_auth=False)
        assert refusal is not None and "--insecure-no-auth" in refusal
        assert bind_refusal(host, has_token=True, insecure_no_auth=False) is None
        assert bind_refusal(host, has_token=False, insecure_no_auth=True) is None
    assert default_allowed_hosts("127.0.0.1") == ("localhost", "127.0.0.1", "::1")
    assert "10.1.2.3" in default_allowed_hosts("10.1.2.3")
    assert "localhost" not in default_allowed_hosts("10.1.2.3")
    assert {"localhost", socket.gethostname().lower()} <= set(default_allowed_hosts("0.0.0.0"))


# -- sizes -------------------------------------------------------------------------------------


async def test_oversized_ids_tags_and_bodies_are_refused_without_echo(api: Any) -> None:
    huge = "a" * 5000
    for method, path in (("GET", f"/api/jobs/{huge}"), ("POST", f"/api/jobs/{huge}/cancel"),
                         ("GET", f"/api/dlq/{huge}"), ("GET", f"/api/documents/{huge}")):
        refused = await api.request(method, path)
        assert refused.status_code == 422, path
        assert "a" * 200 not in refused.text and len(refused.text) < 1000
    job = {"type": "metadata_extract", "payload": {"collection": "docs"}}
    for extra, field in (({"tags": ["a" * 100_000]}, "tags.0"), ({"tags": ["t"] * 21}, "tags"),
                         ({"user_id": huge}, "user_id"), ({"type": huge}, "type")):
        refused = await api.post("/api/jobs", json={**job, **extra})
        assert refused.status_code == 422, extra.keys()
        assert field in refused.json()["error"]["fields"]
        assert "a" * 200 not in refused.text and len(refused.text) < 1000
    note = upload_files("a.txt", b"gliders ride rising air\n")
    for data, field in (({"tags": ",".join(["t" * 101] * 3)}, "tags"),
                        ({"tags": ",".join(f"t{i}" for i in range(21))}, "tags"),
                        ({"user_id": "u" * 257}, "user_id"),
                        ({"tags": "a" * 100_000}, "tags")):
        refused = await api.post("/api/documents/upload", data=data, files=note)
        assert refused.status_code == 422, data.keys()
        assert field in refused.json()["error"]["fields"]
        assert "t" * 101 not in refused.text and "a" * 200 not in refused.text
    big = await api.post("/api/search", content=b'{"query": "' + b"x" * (2 << 20) + b'"}',
                         headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"
    assert (await api.get("/api/jobs")).json()["count"] == 0
