"""The API as a real server process (uvicorn in a subprocess, one in-process upload worker):
hit over HTTP with httpx, then driven through the dashboard in Debian's Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import PAPER, PHRASE, TERMINAL
from served import (
    AUTH,
    CHROMIUM,
    CHROMIUM_ARGS,
    NO_CHROMIUM,
    TOKEN,
    Server,
    dashboard,
    screenshot,
    serving,
)

NOTE = (b"# Gliders\n\nA glider is a heavier-than-air aircraft that flies without an engine, "
        b"riding rising air called thermals.\n")


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(redis_url, tmp_path_factory.mktemp("server")) as running:
        yield running


def test_real_server_process(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json()["status"] == "ready"
        assert http.get("/api/jobs").status_code == 401
        assert http.get("/").status_code == 200  # the dashboard shell needs no token
        workers = http.get("/api/workers", headers=AUTH).json()
        assert workers["count"] == 1

        upload = http.post("/api/documents/upload", headers=AUTH, data={"collection": "air"},
                           files={"file": ("gliders.md", NOTE, "text/markdown")})
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["job_id"]

        events: list[dict[str, Any]] = []
        with http.stream("GET", f"/api/jobs/{job_id}/events", headers=AUTH,
                         timeout=60) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        assert events[-1]["status"] == "completed" and events[-1]["progress"] == 100
        assert all(e["status"] not in TERMINAL for e in events[:-1])

        hits = http.post("/api/search", headers=AUTH, json={
            "collection": "air", "query": "aircraft without an engine"}).json()["hits"]
        assert "thermals" in hits[0]["text"] and hits[0]["filename"] == "gliders.md"
        metrics = http.get("/metrics", headers=AUTH).text
        assert 'docworkers_job_processing_seconds_count{type="document_upload"} 1.0' in metrics


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_dashboard_in_browser(server: Server, corpus: Path) -> None:
    from playwright.sync_api import expect

    # The server has a token: the page asks for it and keeps it (dashboard() signs in).
    with dashboard(server) as page:
        assert page.evaluate("localStorage.getItem('docworkers.apiToken')") == TOKEN
        expect(page.locator("#stats")).to_contain_text("workers")
        worker = page.locator("#workers tr").first  # the server's own upload worker
        expect(worker.locator("td.services")).to_have_text("ok")  # no breaker is open

        # the picker offers every format the server parses (from /api/config), and OCR modes
        assert ".msg" in (page.locator("#file").get_attribute("accept") or "")
        assert page.locator("#ocr option").all_inner_texts()[1:] == ["always", "never"]
        page.set_input_files("#file", str(corpus / PAPER))
        page.fill("#collection", "browser-docs")
        page.select_option("#ocr", "never")
        page.click("#upload-button")
        expect(page.locator("#upload-status")).to_contain_text("Queued")
        row = page.locator("#jobs tr", has_text=Path(PAPER).name)
        expect(row.locator(".percent")).to_have_text("100%", timeout=60_000)
        expect(row.locator(".badge")).to_have_text("completed")
        assert row.locator("progress").evaluate("bar => bar.value") == 100
        job_id = row.get_attribute("data-job-id")
        with httpx.Client(base_url=server.url, headers=AUTH) as http:
            assert http.get(f"/api/jobs/{job_id}").json()["payload"]["ocr"] == "never"

        page.fill("#query", "learning-based framework reduces manual specification")
        page.fill("#search-collection", "browser-docs")
        page.click("#search-form button[type=submit]")
        first = page.locator("#search-results li").first
        expect(first).to_contain_text(PHRASE)
        expect(first).to_contain_text(Path(PAPER).name)
        expect(first).to_contain_text("page 2")
        expect(first).to_contain_text("found by")  # hybrid by default
        page.select_option("#search-mode", "keyword")
        page.click("#search-form button[type=submit]")
        expect(page.locator("#search-results li").first).to_contain_text(
            "found by keyword #1")
        # nothing (the workers table, long passages) makes the page scroll sideways
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "overview")


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_docs_in_browser_offline(server: Server) -> None:
    """/docs renders the operations with every request off this server refused."""
    from playwright.sync_api import Route, expect, sync_playwright

    elsewhere: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_this_server)
            page.goto(server.url + "/docs")
            expect(page.locator(".opblock-summary-path", has_text="/api/jobs").first) \
                .to_be_visible(timeout=30_000)
        finally:
            browser.close()
    assert elsewhere == []
