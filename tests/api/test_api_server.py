"""The API as a real server process (uvicorn in a subprocess, one in-process upload worker):
hit over HTTP with httpx, then driven through the dashboard in Debian's Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from api_support import PAPER, PHRASE, TERMINAL

from docworkers.stack.servers import free_port

HERE = Path(__file__).resolve().parent
TOKEN = "e2e-token"
QUEUE = "e2e"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOTE = (b"# Gliders\n\nA glider is a heavier-than-air aircraft that flies without an engine, "
        b"riding rising air called thermals.\n")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]



def live_workers(client: redis.Redis) -> list[str]:
    now_ms = int(time.time() * 1000)
    return [str(name) for name in client.zrangebyscore(f"dw:{{{QUEUE}}}:workers", now_ms, "+inf")]


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("server")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCWORKERS_")}
    env.update(DOCWORKERS_REDIS_URL=redis_url, DOCWORKERS_QUEUE=QUEUE,
               DOCWORKERS_CHROMA_PATH=str(base / "chroma"),
               DOCWORKERS_STORAGE_DIR=str(base / "uploads"), DOCWORKERS_API_TOKEN=TOKEN,
               DOCWORKERS_RETRY_DELAY="0", DOCWORKERS_LOG_LEVEL="WARNING")
    port = free_port()
    log = base / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(HERE / "api_server_proc.py"),
                                    str(port), "1"], env=env, cwd=base, stdout=out,
                                   stderr=subprocess.STDOUT)
    running = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the server exited:\n{running.output()}"
            assert time.monotonic() < deadline, f"the server never got ready:\n{running.output()}"
            try:
                if httpx.get(f"{running.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        # A clean stop: uvicorn re-raises the SIGTERM it handled after the lifespan shut down,
        # so the status is "terminated"; the worker took itself out of the registry.
        assert code in (0, -signal.SIGTERM), running.output()
        assert "Traceback" not in running.output(), running.output()
        assert live_workers(client) == []
        client.flushdb()
        client.close()


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


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="Debian's chromium is not installed at /usr/bin/chromium "
                           "(apt-get install -y chromium)")
def test_dashboard_in_browser(server: Server, corpus: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda message: problems.append(message.text)
                    if message.type == "error" and "401" not in message.text else None)
            page.goto(server.url + "/")

            # The server has a token: the page asks for it and keeps it.
            expect(page.locator("#token-dialog")).to_be_visible()
            page.fill("#token", TOKEN)
            page.click("#token-form button[value=save]")
            expect(page.locator("#token-dialog")).to_be_hidden()
            assert page.evaluate("localStorage.getItem('docworkers.apiToken')") == TOKEN
            expect(page.locator("#stats")).to_contain_text("workers")
            worker = page.locator("#workers tr").first  # the server's own upload worker
            expect(worker).to_contain_text("fixed")  # its scaling; and no breaker is open:
            expect(worker.locator("td").nth(5)).to_have_text("ok")

            page.set_input_files("#file", str(corpus / PAPER))
            page.fill("#collection", "browser-docs")
            page.click("#upload-button")
            expect(page.locator("#upload-status")).to_contain_text("Queued")
            row = page.locator("#jobs tr", has_text=Path(PAPER).name)
            expect(row.locator(".percent")).to_have_text("100%", timeout=60_000)
            expect(row.locator(".badge")).to_have_text("completed")
            assert row.locator("progress").evaluate("bar => bar.value") == 100

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
        finally:
            browser.close()
    assert problems == []


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="Debian's chromium is not installed at /usr/bin/chromium "
                           "(apt-get install -y chromium)")
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
