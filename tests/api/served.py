"""The API as a real server process (uvicorn in a subprocess, configured from DOCWORKERS_*
variables like a deployment), and Debian's Chromium driving its dashboard. Shared by every
end-to-end test module: each starts its own server with :func:`serving`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import redis
from redis_cluster import keyspace_client

from docworkers.stack.servers import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Page

HERE = Path(__file__).resolve().parent
TOKEN = "e2e-token"
QUEUE = "e2e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NO_CHROMIUM = ("Debian's chromium is not installed at /usr/bin/chromium "
               "(apt-get install -y chromium)")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    base: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def live_workers(client: redis.Redis) -> list[str]:
    now_ms = int(time.time() * 1000)
    return [str(name) for name in client.zrangebyscore(f"dw:{{{QUEUE}}}:workers", now_ms, "+inf")]


@contextmanager
def serving(redis_url: str, base: Path, *, workers: int = 1,
            env: dict[str, str] | None = None) -> Iterator[Server]:
    """A server on an emptied Redis database with ``workers`` in-process upload workers; on
    exit it must stop cleanly (no traceback, its workers gone) and the database is emptied."""
    client = keyspace_client(redis_url)  # a cluster's too
    client.flushdb()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DOCWORKERS_")}
    environ.update(DOCWORKERS_REDIS_URL=redis_url, DOCWORKERS_QUEUE=QUEUE,
                   DOCWORKERS_CHROMA_PATH=str(base / "chroma"),
                   DOCWORKERS_STORAGE_DIR=str(base / "uploads"), DOCWORKERS_API_TOKEN=TOKEN,
                   DOCWORKERS_RETRY_DELAY="0", DOCWORKERS_LOG_LEVEL="WARNING")
    environ.update(env or {})
    port = free_port()
    log = base / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(HERE / "api_server_proc.py"),
                                    str(port), str(workers)], env=environ, cwd=base,
                                   stdout=out, stderr=subprocess.STDOUT)
    running = Server(f"http://127.0.0.1:{port}", process, log, base)
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
        # so the status is "terminated"; the workers took themselves out of the registry.
        assert code in (0, -signal.SIGTERM), running.output()
        assert "Traceback" not in running.output(), running.output()
        assert live_workers(client) == []
        client.flushdb()
        client.close()


@contextmanager
def dashboard(server: Server, *, width: int = 1100, height: int = 700,
              login: bool = True) -> Iterator[Page]:
    """A Chromium page on the dashboard, signed in with the token unless ``login`` is False.
    Page errors and console errors (other than the expected 401s) fail the test on exit."""
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda message: problems.append(message.text)
                    if message.type == "error" and "401" not in message.text else None)
            page.goto(server.url + "/")
            if login:
                expect(page.locator("#token-dialog")).to_be_visible()
                page.fill("#token", TOKEN)
                page.click("#token-form button[value=save]")
                expect(page.locator("#token-dialog")).to_be_hidden()
            yield page
        finally:
            browser.close()
    assert problems == []


def screenshot(page: Page, name: str) -> None:
    """Save the view for the README when SCREENSHOTS_DIR names a folder (the tests
    regenerate docs/screenshots/ with SCREENSHOTS_DIR=docs/screenshots)."""
    folder = os.environ.get("SCREENSHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
