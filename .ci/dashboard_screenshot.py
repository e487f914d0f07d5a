"""Regenerate docs/dashboard.png: the dashboard after three corpus uploads, 1100x1150.

    .venv/bin/python .ci/dashboard_screenshot.py

Starts the API (one in-process worker, a private Redis, Chroma and uploads in a temporary
folder) from tests/api/api_server_proc.py, uploads three documents, waits until the dashboard
shows them completed, and saves the top of the page. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
DOCS = ("pdf/layout-parser-paper-fast.pdf", "html/fake-html.html", "docx/handbook-1p.docx")
HEIGHT = 1150  # the workers table (one worker per job type) and the jobs below it
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCWORKERS_")}
        env.update(DOCWORKERS_CHROMA_PATH=f"{tmp}/chroma", DOCWORKERS_STORAGE_DIR=f"{tmp}/up",
                   DOCWORKERS_LOG_LEVEL="WARNING")
        server = subprocess.Popen([sys.executable, str(ROOT / "tests/api/api_server_proc.py"),
                                   str(port), "1"], env=env, cwd=tmp)
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            for relative in DOCS:
                content = (CORPUS / relative).read_bytes()
                httpx.post(f"{url}/api/documents/upload",
                           files={"file": (Path(relative).name, content)})
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                     args=ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": HEIGHT})
                page.goto(url + "/")
                page.wait_for_function(
                    f"() => document.querySelectorAll('#jobs .badge.completed').length "
                    f">= {len(DOCS)}", timeout=120_000)
                page.wait_for_timeout(2500)  # one more stats refresh
                page.screenshot(path=str(ROOT / "docs/dashboard.png"),
                                clip={"x": 0, "y": 0, "width": 1100, "height": HEIGHT})
                browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)


if __name__ == "__main__":
    main()
