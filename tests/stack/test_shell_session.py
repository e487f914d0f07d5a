"""A new user's shell session with no DOCWORKERS_* variable at all, run as subprocesses in a
temporary folder: real valkey and `chroma run` (the local stack), the real model, real files.

    docworkers worker &  docworkers serve &  docworkers ingest docs/ --no-wait
    docworkers jobs list / stats / search / documents list / documents delete
    the dashboard's upload and search (its HTTP calls), kill -9 of the process that started
    the stack, docworkers down, docworkers up: the documents, collections and jobs are there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from docworkers.stack import LocalStack
from docworkers.stack.servers import free_port
from docworkers.stack.state import StackState

DOCWORKERS = str(Path(sys.executable).with_name("docworkers"))
DOCS = ("html/fake-html.html", "docx/handbook-1p.docx", "text/UDHR_first_article_all.txt")
TIMEOUT = 240.0  # seconds for work the worker does (the model loads first)


def shell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCWORKERS_")}
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def folder(tmp_path: Path, corpus: Path) -> Iterator[Path]:
    """A working folder with docs/ in it; its local stack is stopped at the end."""
    (tmp_path / "docs").mkdir()
    for name in DOCS:
        shutil.copy(corpus / name, tmp_path / "docs")
    yield tmp_path
    LocalStack(tmp_path / ".docworkers").down()


def command(folder: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, ok: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([DOCWORKERS, *args], cwd=folder, env=env or shell_env(),
                              capture_output=True, text=True, timeout=300, check=False)
        if ok:
            assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done
    return run


def background(folder: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    with (folder / f"{name}.log").open("wb") as log:  # the child keeps its own copy
        return subprocess.Popen([DOCWORKERS, *args], cwd=folder, env=shell_env(), stdout=log,
                                stderr=subprocess.STDOUT)


def until(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.3)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=60)


def test_a_shell_session_on_the_embedded_defaults(folder: Path) -> None:
    run = command(folder)
    worker = background(folder, "worker", "worker")
    port = free_port()
    serve = background(folder, "serve", "serve", "--port", str(port))
    try:
        queued = run("ingest", "docs/", "--no-wait")
        assert "3 queued" in queued.stdout

        def jobs() -> list[dict[str, Any]]:
            return list(json.loads(run("jobs", "list", "--json").stdout))

        assert len(jobs()) == 3
        until(lambda: all(j["status"] == "completed" for j in jobs()), "the 3 uploads")
        assert all(j["error"] is None for j in jobs())
        stats = run("stats", "--json")
        assert json.loads(stats.stdout)["by_status"]["completed"] == 3
        assert "completed" in run("stats").stdout

        hits = json.loads(run("search", "chapter 13 standing trustee", "--json").stdout)
        assert hits[0]["filename"] == "handbook-1p.docx"
        documents = json.loads(run("documents", "list", "--json").stdout)
        assert sorted(d["filename"] for d in documents) == sorted(Path(n).name for n in DOCS)
        html = next(d["document_id"] for d in documents if d["filename"] == "fake-html.html")
        run("documents", "delete", html, "--yes")
        assert len(json.loads(run("documents", "list", "--json").stdout)) == 2

        # The dashboard's upload and search: the same HTTP calls its page makes.
        api = f"http://127.0.0.1:{port}"
        until(lambda: _answers(api, serve), "docworkers serve", timeout=120)
        with httpx.Client(base_url=api, timeout=30) as client:
            sent = client.post("/api/documents/upload", data={"collection": "web"},
                               files={"file": ("notes.md", b"# Notes\n\nThe counterparty "
                                               b"limit for Zebulon Capital is ZX-4471.\n")})
            assert sent.status_code == 202, sent.text
            job = sent.json()["job_id"]
            until(lambda: client.get(f"/api/jobs/{job}").json()["status"] == "completed",
                  "the dashboard's upload")
            found = client.post("/api/search", json={"collection": "web", "query":
                                                     "Zebulon Capital counterparty limit"})
            assert found.json()["hits"][0]["filename"] == "notes.md"

        # kill -9 the process that started the stack: the next command finds the servers.
        state = StackState.read(folder / ".docworkers")
        starter = state.servers["redis"].started_by
        assert starter in (worker.pid, serve.pid)
        stop(worker if starter == worker.pid else serve, signal.SIGKILL)
        assert len(jobs()) == 4
        assert StackState.read(folder / ".docworkers").servers == state.servers
    finally:
        stop(worker)
        stop(serve)

    run("down")
    assert "stopped" in run("status").stdout
    run("up")  # the next day
    kept = json.loads(run("documents", "list", "--json").stdout)
    assert sorted(d["filename"] for d in kept) == [
        "UDHR_first_article_all.txt", "handbook-1p.docx", "notes.md"]
    collections = {c["name"]: c for c in json.loads(run("collections", "list", "--json").stdout)}
    assert collections["documents"]["documents"] == 2 and collections["web"]["documents"] == 1
    history = json.loads(run("jobs", "list", "--json").stdout)
    assert len(history) == 4 and {j["status"] for j in history} == {"completed"}
    hits = json.loads(run("search", "chapter 13 standing trustee", "--json").stdout)
    assert hits[0]["filename"] == "handbook-1p.docx"

    # Another data folder on the same machine: its own servers, none of this data.
    other = {**shell_env(), "DOCWORKERS_HOME": str(folder / "elsewhere")}
    try:
        assert json.loads(run("documents", "list", "--json", env=other).stdout) == []
        mine, theirs = (json.loads(run("status", "--json", env=env).stdout)["servers"][0]
                        for env in (shell_env(), other))
        assert mine["pid"] != theirs["pid"] and mine["port"] != theirs["port"]
    finally:
        LocalStack(folder / "elsewhere").down()


def _answers(api: str, serve: subprocess.Popen[bytes]) -> bool:
    assert serve.poll() is None, "docworkers serve exited"
    try:
        return httpx.get(f"{api}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
