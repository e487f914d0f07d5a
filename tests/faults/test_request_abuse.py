"""Abusive requests against a real `docworkers serve` (a subprocess on a loopback port, the
session's Redis, embedded Chroma, the real model), sent with raw sockets, httpx and Chromium:

* search filters that once made Chroma fail and opened the vector store's circuit breaker
  (six of them failed every search for 10 s and sent uploads to retrying) are now 422s naming
  the field, and the breaker never hears of them;
* cross-origin writes (a page elsewhere posting a multipart upload with ``mode: "no-cors"``, or
  a body-less cancel / retry / requeue) and a Host that is not this server's are refused, with
  no token set (the default);
* a request head or body that stalls, a body shorter than its Content-Length, HTTP that does not
  parse, and oversized heads, targets, ids and tags each get the API's JSON error, and the
  server closes the connection itself;
* a non-loopback bind without a token refuses to start; scoped tokens allow what their scope
  allows.

Every wait is for an event (a reply, the server closing, a file appearing or going, a log
line) with a generous limit that only guards against hanging; nothing asserts a duration.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from docworkers.stack.servers import free_port

LIMIT = 90.0  # seconds any awaited event may take on a loaded machine (a hang guard only)
REQUEST_TIMEOUT = "3"  # DOCWORKERS_API_REQUEST_TIMEOUT of the servers here
CHROMIUM = Path("/usr/bin/chromium")
NOTE = (b"# Gliders\n\nA glider is a heavier-than-air aircraft that flies without an engine, "
        b"riding rising air called thermals.\n")
READ, WRITE, ADMIN = "read-token-5f2a9c", "write-token-8d1e4b", "admin-token-3c7f0a"
TERMINAL = {"completed", "failed", "cancelled", "dead"}



def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + LIMIT
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
    return result


def server_env(redis_url: str, base: Path, queue: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCWORKERS_")}
    env.update(DOCWORKERS_REDIS_URL=redis_url, DOCWORKERS_QUEUE=queue,
               DOCWORKERS_CHROMA_PATH=str(base / "chroma"),
               DOCWORKERS_STORAGE_DIR=str(base / "uploads"), DOCWORKERS_RETRY_DELAY="0",
               DOCWORKERS_API_REQUEST_TIMEOUT=REQUEST_TIMEOUT, COLUMNS="300", **settings)
    return env


@dataclass
class Served:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    storage: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def run_serve(env: dict[str, str], base: Path, *args: str) -> subprocess.Popen[bytes]:
    with (base / "serve.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "docworkers.cli", "serve", *args],
                                env=env, cwd=base, stdout=log, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def serving(env: dict[str, str], base: Path, *args: str) -> Iterator[Served]:
    port = free_port()
    process = run_serve(env, base, "--port", str(port), *args)
    served = Served(port, process, base / "serve.log", base / "uploads")
    try:
        def ready() -> bool:
            assert process.poll() is None, f"the server exited:\n{served.output()}"
            try:
                return httpx.get(f"{served.url}/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, "the server to be ready")
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=LIMIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        assert code == 0, served.output()
        assert "Traceback" not in served.output(), served.output()


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """No token (the default), one upload worker in the process."""
    base = tmp_path_factory.mktemp("abuse")
    with serving(server_env(redis_url, base, "abuse"), base, "--with-workers", "1") as served:
        yield served
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def scoped_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Three tokens: read, write and (the old DOCWORKERS_API_TOKEN) admin; no workers."""
    base = tmp_path_factory.mktemp("scoped")
    env = server_env(redis_url, base, "abuse-scoped", DOCWORKERS_API_TOKEN=ADMIN,
                     DOCWORKERS_API_TOKENS=f"read:{READ},write:{WRITE}")
    with serving(env, base, "--with-workers", "0") as served:
        yield served
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


# -- raw HTTP -------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any  # decoded JSON
    closed: bool  # the server closed the connection (we never close first)


def parse_reply(raw: bytes, closed: bool) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), raw[:200]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert headers.get("content-type") == "application/json", raw[:300]
    return Reply(int(lines[0].split()[1]), headers, json.loads(body), closed)


def exchange(served: Served, data: bytes, *, half_close: bool = False,
             sent: Callable[[], None] | None = None) -> Reply:
    """Send ``data`` (then maybe shut our side), read until the server closes."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=LIMIT) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        if sent is not None:
            sent()
        chunks: list[bytes] = []
        closed = False
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            closed = True
    return parse_reply(b"".join(chunks), closed)


def head(served: Served, first_line: str, *headers: str, host: str | None = None) -> bytes:
    lines = [first_line, f"Host: {host or f'127.0.0.1:{served.port}'}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def assert_refused(reply: Reply, status: int, code: str) -> None:
    assert (reply.status, reply.body["error"]["code"]) == (status, code), reply
    assert reply.headers.get("connection") == "close"
    assert reply.closed, "the server left the connection open"


def multipart(fields: dict[str, str], content: bytes = NOTE) -> tuple[bytes, str]:
    boundary = "docworkers-abuse-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="gliders.md"\r\nContent-Type: text/markdown\r\n\r\n'.encode()
                 + content + f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload_and_wait(http: httpx.Client, collection: str) -> dict[str, Any]:
    reply = http.post("/api/documents/upload", data={"collection": collection},
                      files={"file": ("gliders.md", NOTE, "text/markdown")})
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["job_id"]
    return wait_until(lambda: (job := http.get(f"/api/jobs/{job_id}").json())["status"]
                      in TERMINAL and job, f"job {job_id} to finish")


def job_count(http: httpx.Client) -> int:
    return int(http.get("/api/jobs", params={"limit": 1000}).json()["count"])


def stored(served: Served) -> list[str]:
    return sorted(p.name for p in served.storage.iterdir()) if served.storage.exists() else []


# -- 4: client input never trips the vector store's breaker ------------------------------------

# What the outside fault run sent: each one was a 503 "vector store unavailable" and counted.
BAD_FILTERS = [b'{"page_start": {"$in": []}}', b'{"page_start": {"$in": [1, "a"]}}',
               b'{"page_start": NaN}', b'{"page_start": {"$gte": Infinity}}',
               b'{"page_start": {"$in": [1.5, 2]}}', b'{"chunk_index": {"$nin": [true]}}']


def test_filters_that_tripped_the_breaker_are_422_and_the_store_stays_up(
        server: Served) -> None:
    with httpx.Client(base_url=server.url, timeout=LIMIT) as http:
        assert upload_and_wait(http, "air")["status"] == "completed"
        for _ in range(2):  # 12 requests: twice the breaker's threshold
            for raw in BAD_FILTERS:
                body = b'{"collection": "air", "query": "aircraft", "filters": ' + raw + b"}"
                reply = http.post("/api/search", content=body,
                                  headers={"Content-Type": "application/json"})
                assert reply.status_code == 422, (raw, reply.text)
                error = reply.json()["error"]
                assert error["code"] == "invalid_request"
                assert set(error["fields"]) <= {"filters.page_start", "filters.chunk_index"}
        good = http.post("/api/search", json={"collection": "air", "query": "aircraft",
                                              "filters": {"chunk_index": {"$gte": 0},
                                                          "filename": "gliders.md"}})
        assert good.status_code == 200, good.text
        assert "thermals" in good.json()["hits"][0]["text"]
        workers = http.get("/api/workers").json()["workers"]
        states = [w["breakers"].get("vector-store") for w in workers]
        assert states and set(states) == {"closed"}, workers
        # the in-process worker stores uploads through the same breaker: not retrying
        again = upload_and_wait(http, "air-2")
        assert (again["status"], again["retries"]) == ("completed", 0), again


# -- 5: cross-site writes, foreign Host, binding -----------------------------------------------

BROWSER_CROSS_SITE = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site",
                      "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}


def test_cross_origin_upload_and_bodyless_posts_are_refused(server: Served) -> None:
    with httpx.Client(base_url=server.url, timeout=LIMIT) as http:
        done = upload_and_wait(http, "cross")
        jobs, files = job_count(http), stored(server)
        body, content_type = multipart({"collection": "stolen"})
        refused = http.post("/api/documents/upload", content=body,
                            headers={**BROWSER_CROSS_SITE, "Content-Type": content_type})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "cross_site_request"
        job = done["id"]
        for method, path in (("POST", f"/api/jobs/{job}/cancel"),
                             ("POST", f"/api/jobs/{job}/retry"),
                             ("POST", f"/api/dlq/{job}/requeue"), ("DELETE", f"/api/jobs/{job}"),
                             ("DELETE", "/api/dlq"), ("DELETE", "/api/collections/cross")):
            for origin in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                           {"Sec-Fetch-Site": "cross-site"}):
                reply = http.request(method, path, headers=origin)
                assert reply.status_code == 403, (method, path, origin, reply.text)
        assert job_count(http) == jobs and stored(server) == files
        assert http.get(f"/api/jobs/{job}").json()["status"] == "completed"
        # the same origin (the dashboard) and clients without Origin still work
        mine = http.post(f"/api/jobs/{job}/retry",
                         headers={"Origin": server.url, "Sec-Fetch-Site": "same-origin"})
        assert mine.status_code == 409, mine.text  # reached the handler: completed jobs stay


class _AttackerPage(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="Debian's chromium is not installed at /usr/bin/chromium "
                           "(apt-get install -y chromium)")
def test_a_page_on_another_origin_cannot_upload_or_cancel(server: Served) -> None:
    """What the fault run did, in a real browser: a page on another origin (localhost:<other
    port>, another site than 127.0.0.1) posts FormData with mode "no-cors"."""
    from playwright.sync_api import sync_playwright

    with httpx.Client(base_url=server.url, timeout=LIMIT) as http:
        done = upload_and_wait(http, "browser")
        jobs, files = job_count(http), stored(server)
    refusals = ("refused POST /api/documents/upload from 127.0.0.1: a cross-site request",
                f"refused POST /api/jobs/{done['id']}/retry from 127.0.0.1: a cross-site request")
    before = [server.output().count(line) for line in refusals]
    _AttackerPage.page = b"<!doctype html><title>cute cats</title>"
    attacker = ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    thread = threading.Thread(target=attacker.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update"])
            try:
                page = browser.new_page()
                page.goto(f"http://localhost:{attacker.server_address[1]}/")
                page.evaluate("""async ([api, job]) => {
                    const form = new FormData();
                    form.append("collection", "stolen");
                    form.append("file", new Blob(["stolen words\\n"]), "stolen.txt");
                    await fetch(api + "/api/documents/upload",
                                {method: "POST", mode: "no-cors", body: form});
                    await fetch(api + "/api/jobs/" + job + "/retry",
                                {method: "POST", mode: "no-cors"});
                }""", [server.url, done["id"]])
            finally:
                browser.close()
    finally:
        attacker.shutdown()
        attacker.server_close()
    # The requests did reach the server (so this is not the browser refusing on its own) ...
    wait_until(lambda: [server.output().count(line) for line in refusals]
               == [n + 1 for n in before], "the server to log both refusals")
    with httpx.Client(base_url=server.url, timeout=LIMIT) as http:
        # ... and changed nothing.
        assert job_count(http) == jobs and stored(server) == files


def test_a_host_that_is_not_this_server_is_refused(server: Served) -> None:
    for path in ("/api/jobs", "/healthz", "/"):
        reply = exchange(server, head(server, f"GET {path} HTTP/1.1",
                                      host=f"rebound.evil.example:{server.port}"))
        assert_refused(reply, 400, "invalid_host")
        assert "evil" not in json.dumps(reply.body)
    with httpx.Client(base_url=f"http://localhost:{server.port}", timeout=LIMIT) as http:
        assert http.get("/api/jobs").status_code == 200


def test_a_non_loopback_bind_without_a_token_refuses_to_start(
        redis_url: str, tmp_path: Path) -> None:
    # The refusal comes before anything listens, so asking for all interfaces is safe here;
    # nothing is started on a non-loopback address (test_api_security covers the decision).
    env = server_env(redis_url, tmp_path, "abuse-bind")
    port = free_port()
    process = run_serve(env, tmp_path, "--host", "0.0.0.0", "--port", str(port))
    assert process.wait(timeout=LIMIT) == 2
    output = (tmp_path / "serve.log").read_text()
    assert "refusing to listen on 0.0.0.0 without an API token" in output
    assert "--insecure-no-auth" in output and "Traceback" not in output
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


# -- 6: slow, truncated, malformed and oversized requests --------------------------------------


def test_headers_and_five_bytes_then_silence(server: Served) -> None:
    body, content_type = multipart({"collection": "slow"})
    reply = exchange(server, head(server, "POST /api/documents/upload HTTP/1.1",
                                  f"Content-Type: {content_type}",
                                  f"Content-Length: {len(body)}") + body[:5])
    assert_refused(reply, 408, "request_timeout")
    reply = exchange(server, head(server, "POST /api/search HTTP/1.1",
                                  "Content-Type: application/json", "Content-Length: 100")
                     + b'{"que')
    assert_refused(reply, 408, "request_timeout")


def test_a_stalled_upload_leaves_no_temporary_file(server: Served) -> None:
    content = NOTE * (3 * 1024 * 1024 // len(NOTE))  # ~3 MiB, of which half is sent
    body, content_type = multipart({"collection": "stalled"}, content)

    def part_file_written() -> None:  # the server has streamed the first MiB to disk
        wait_until(lambda: any(n.endswith(".part") for n in stored(server)),
                   "the upload's temporary file")

    reply = exchange(server, head(server, "POST /api/documents/upload HTTP/1.1",
                                  f"Content-Type: {content_type}",
                                  f"Content-Length: {len(body)}") + body[:len(body) // 2],
                     sent=part_file_written)
    assert_refused(reply, 408, "request_timeout")
    wait_until(lambda: not any(n.endswith(".part") for n in stored(server)),
               "the temporary file to be deleted")


def test_a_body_shorter_than_its_content_length(server: Served) -> None:
    body, content_type = multipart({"collection": "short"})
    reply = exchange(server, head(server, "POST /api/documents/upload HTTP/1.1",
                                  f"Content-Type: {content_type}",
                                  f"Content-Length: {len(body) + 100}") + body,
                     half_close=True)
    assert_refused(reply, 400, "incomplete_body")
    reply = exchange(server, head(server, "POST /api/search HTTP/1.1",
                                  "Content-Type: application/json", "Content-Length: 100")
                     + b'{"query": "x"', half_close=True)
    assert_refused(reply, 400, "incomplete_body")


def test_truncated_and_malformed_requests_get_json_errors(server: Served) -> None:
    chunked = head(server, "POST /api/search HTTP/1.1", "Content-Type: application/json",
                   "Transfer-Encoding: chunked")
    for data in (chunked + b"zz\r\n{}\r\n",  # not a chunk size
                 b"GARBAGE\r\n\r\n",
                 head(server, "POST /api/search HTTP/1.1", "Content-Length: ten")):
        assert_refused(exchange(server, data), 400, "malformed_request")
    # a chunk shorter than its size, then the client closes its side
    assert_refused(exchange(server, chunked + b"20\r\n{}\r\n0\r\n\r\n", half_close=True),
                   400, "incomplete_body")
    reply = exchange(server, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                             "X-Half: a".encode(), half_close=True)
    assert_refused(reply, 400, "incomplete_request")


def test_a_slow_or_oversized_head_is_refused(server: Served) -> None:
    assert_refused(exchange(server, head(server, "GET /healthz HTTP/1.1")[:-4] + b"\r\nX-a: b"),
                   408, "request_timeout")
    assert_refused(exchange(server, head(server, "GET /healthz HTTP/1.1",
                                         "X-Big: " + "b" * 40_000)),
                   431, "headers_too_large")
    assert_refused(exchange(server, head(server, "GET /healthz HTTP/1.1",
                                         *(f"X-{i}: {i}" for i in range(150)))),
                   431, "headers_too_large")
    assert_refused(exchange(server, head(server, "GET /healthz?" + "q" * 9000 + " HTTP/1.1")),
                   414, "uri_too_long")
    # a connection that never sends anything is closed without an answer
    with socket.create_connection(("127.0.0.1", server.port), timeout=LIMIT) as idle:
        assert idle.recv(1024) == b""
    with httpx.Client(base_url=server.url, timeout=LIMIT) as http:  # still serving
        assert http.get("/healthz").json() == {"status": "ok"}


def test_oversized_ids_and_tags_are_refused_without_echo(server: Served) -> None:
    huge = "a" * 5000
    with httpx.Client(base_url=server.url, timeout=LIMIT) as http:
        jobs = job_count(http)
        for reply in (
            http.get(f"/api/jobs/{huge}"),
            http.get(f"/api/jobs/{huge}/events"),
            http.post("/api/jobs", json={"type": "metadata_extract",
                                         "payload": {"collection": "docs"},
                                         "tags": ["a" * 100_000]}),
            http.post("/api/jobs", json={"type": "metadata_extract",
                                         "payload": {"collection": "docs"}, "user_id": huge}),
            http.post("/api/documents/upload", data={"tags": "a" * 100_000},
                      files={"file": ("gliders.md", NOTE, "text/markdown")}),
            http.post("/api/documents/upload", data={"tags": "a" * 1000},
                      files={"file": ("gliders.md", NOTE, "text/markdown")}),
        ):
            assert reply.status_code == 422, reply.text[:300]
            assert "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" not in reply.text
            assert len(reply.content) < 1000 and reply.json()["error"]["fields"]
        assert job_count(http) == jobs


# -- scoped tokens ----------------------------------------------------------------------------


def test_scoped_tokens_on_a_real_server(scoped_server: Served) -> None:
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    note = {"file": ("gliders.md", NOTE, "text/markdown")}
    with httpx.Client(base_url=scoped_server.url, timeout=LIMIT) as http:
        assert http.get("/api/jobs").status_code == 401
        assert http.get("/api/jobs", headers=auth("nope")).status_code == 401
        for path in ("/api/jobs", "/api/workers", "/api/dlq", "/metrics"):
            assert http.get(path, headers=auth(READ)).status_code == 200, path
        assert http.post("/api/search", headers=auth(READ),
                         json={"query": "gliders"}).status_code == 200
        assert http.post("/api/documents/upload", headers=auth(READ),
                         files=note).status_code == 403
        upload = http.post("/api/documents/upload", headers=auth(WRITE), files=note)
        assert upload.status_code == 202
        job = upload.json()["job_id"]
        for method, path in (("DELETE", "/api/dlq"), ("POST", f"/api/jobs/{job}/cancel"),
                             ("DELETE", "/api/documents/abc")):
            for token, scope in ((READ, "read"), (WRITE, "write")):
                reply = http.request(method, path, headers=auth(token))
                assert reply.status_code == 403, (method, path, scope)
                assert f"{scope} scope" in reply.json()["error"]["message"]
        assert http.get(f"/api/jobs/{job}", headers=auth(READ)).json()["status"] == "queued"
        assert http.delete("/api/dlq", headers=auth(ADMIN)).status_code == 200
        cancelled = http.post(f"/api/jobs/{job}/cancel", headers=auth(ADMIN))
        assert cancelled.json()["cancel"] == "cancelled"
