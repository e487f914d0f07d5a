"""Shared fixtures: a real Redis server for the whole session, an empty keyspace per test, the
test corpus (tests/data/corpus) and a long PDF built from it; and the rule that a skipped test
fails the run (see pytest_sessionfinish)."""

from __future__ import annotations

import faulthandler
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis_cluster import RedisClusterSet, cluster_for_test, keyspace_client
from server_start import start_valkey

from docworkers.embedded import EmbeddedRedis
from docworkers.queue import RedisJobRepository, RepositoryConfig
from docworkers.queue.redis.clients import async_client
from docworkers.workers.circuit_breaker import breakers

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT / "tests" / "data" / "corpus"
LONG_PDF_PAGES = 619  # as many as example-docs' DA-619p.pdf, which is not kept here

# Skips that do not fail the run: a system package that .ci/run installs is missing on this
# machine. Each is matched against the skip reason and reported loudly (pytest_terminal_summary).
ALLOWED_SKIPS = {
    "Debian's chromium is not installed": "the dashboard was NOT tested in a browser "
                                          "(.ci/run installs chromium; apt-get install chromium)",
}

_skips: list[tuple[str, str]] = []  # (test id, reason) of every skipped test this session


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """DOCWORKERS_TEST_REDIS_URL if set, else a private embedded server on a free port (or a
    failure showing the server's own log: never a skip)."""
    url = os.environ.get("DOCWORKERS_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis()
    start_valkey(server)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """A real Redis Cluster (3 primaries, 3 replicas; tests/redis_cluster.py), started when a
    test first asks for it and stopped at the end of the session. Never a skip: without
    redis-server the test fails saying how to install it."""
    with cluster_for_test(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = keyspace_client(redis_url)  # on a cluster FLUSHDB and KEYS reach every primary
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
async def repo(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[RedisJobRepository]:
    repository = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test"))
    yield repository
    await repository.close()


@pytest.fixture
def corpus() -> Path:
    """The real-world documents the tests read (tests/data/corpus; see its README)."""
    assert CORPUS.is_dir(), f"the test corpus is missing: {CORPUS}"
    return CORPUS


@pytest.fixture(scope="session")
def long_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 619-page PDF with real text on every page: the real page of pdf/DA-1p.pdf, 619 times
    (pdfium imports it once per page), for tests that need "a long PDF"."""
    import pypdfium2 as pdfium

    source = pdfium.PdfDocument(CORPUS / "pdf" / "DA-1p.pdf")
    document = pdfium.PdfDocument.new()
    try:
        document.import_pages(source, [0] * LONG_PDF_PAGES)
        path = tmp_path_factory.mktemp("long-pdf") / f"long-{LONG_PDF_PAGES}p.pdf"
        document.save(path)
    finally:
        document.close()
        source.close()
    return path


def check_invariants(client: redis.Redis, repo: RedisJobRepository) -> dict[str, str]:
    """Every job hash is in exactly one state collection matching its status, and every
    collection member has a hash; a job still in the intake (or claimed from it, not yet
    absorbed) has neither and is there once. Returns {job id: status}."""
    keys = repo.keys
    expected = {
        "pending": {keys.pending}, "queued": {keys.queued, keys.scheduled},
        "retrying": {keys.scheduled}, "processing": {keys.active},
        "completed": {keys.completed}, "failed": {keys.failed}, "dead": {keys.dead},
        "cancelled": {keys.cancelled},
    }
    members = {c: set(client.zrange(c, 0, -1)) for c in keys.collections()}
    statuses: dict[str, str] = {}
    for key in client.scan_iter(match=keys.job_prefix + "*"):
        job_id = key[len(keys.job_prefix):]
        status = client.hget(key, "status")
        assert status is not None
        found = {c for c, ids in members.items() if job_id in ids}
        assert len(found) == 1, f"job {job_id} ({status}) is in {found}"
        assert found <= expected[status], f"job {job_id} is {status} but in {found}"
        assert client.zscore(keys.all_jobs, job_id) is not None
        statuses[job_id] = status
    for collection, ids in members.items():
        assert ids <= set(statuses), f"{collection} holds ids without a job hash"
    for key in client.scan_iter(match=keys.events_prefix + "*"):  # deleted with their job
        assert key[len(keys.events_prefix):] in statuses, f"{key}: events of no job"
    pushed = [json.loads(entry.partition("\n")[0])[0]
              for key in (keys.claimed, keys.intake) for entry in client.lrange(key, 0, -1)
              if entry]  # '' is a wake-up token
    assert len(pushed) == len(set(pushed)), f"a job is in the intake twice: {pushed}"
    for job_id in pushed:
        assert job_id not in statuses, f"job {job_id} is in the intake and has a hash"
        assert client.zscore(keys.all_jobs, job_id) is None
        statuses[job_id] = "queued"
    return statuses


@pytest.fixture
def invariants_of():  # type: ignore[no-untyped-def]
    """check_invariants itself, for a test with clients of its own (``from conftest import``
    may find another folder's conftest.py)."""
    return check_invariants


@pytest.fixture
def invariants(clean_redis: redis.Redis, repo: RedisJobRepository):  # type: ignore[no-untyped-def]
    return lambda: check_invariants(clean_redis, repo)


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real local model, loaded once per test session."""
    from docworkers.ingest.embedding import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder()


@pytest.fixture(scope="session")
def ort_c_api():  # type: ignore[no-untyped-def]
    """onnxruntime's C API, which the model's sessions run on."""
    from docworkers.ingest.onnx_capi import ort_api

    found = ort_api()
    assert found is not None, "the locked onnxruntime wheel ships libonnxruntime"
    return found


@pytest.fixture(scope="session")
def parser():  # type: ignore[no-untyped-def]
    """One isolated parser process for the session: starting one takes seconds."""
    from docworkers.ingest.parsing import IsolatedParser

    shared = IsolatedParser()
    yield shared
    shared.close()


@pytest.fixture
async def ingest_env(redis_url: str, clean_redis: redis.Redis, tmp_path: Path,
                     embedder):  # type: ignore[no-untyped-def]
    """Real Redis, real embedded Chroma in tmp_path, the real model: an UploadWorker's world."""
    from docworkers.ingest.document_repository import DocumentRepository
    from docworkers.ingest.pipeline import DocumentServices
    from docworkers.ingest.vector_store import ChromaVectorRepository

    jobs = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="ingest"))
    documents = DocumentRepository(async_client(redis_url))
    vectors = ChromaVectorRepository.from_path(tmp_path / "chroma")
    services = DocumentServices.local(embedder)
    yield {"jobs": jobs, "documents": documents, "vectors": vectors, "services": services,
           "embedder": embedder}
    await services.aclose()
    vectors.close()
    await documents.client.aclose()
    await jobs.close()


@pytest.fixture
def isolated_breakers() -> Iterator[None]:
    """Breakers are process-wide (like loggers): forget those a test created."""
    before = set(breakers())
    yield
    for name, breaker in breakers().items():
        if name not in before:
            breaker.unregister()


# --- a hung test ends the run with every thread's stack, not at CI's time limit ---------------

# pytest-timeout (120 s, pyproject.toml) fails a test with SIGALRM, which a thread stuck in C
# code, or a cleanup that waits on a task the timeout already cancelled, never sees: once, such
# a hang held CI for its whole 90 minutes with only an "F" to show. Past this limit the process
# prints every thread's stack and exits (faulthandler's own watchdog thread, which needs no GIL).
HARD_TIMEOUT = 300.0
_stderr_copy: list[int] = []  # the terminal's stderr, duplicated before capture hides fd 2


def pytest_configure(config: pytest.Config) -> None:
    _stderr_copy.append(os.dup(2))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    faulthandler.dump_traceback_later(HARD_TIMEOUT, exit=True, file=_stderr_copy[0])
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _report_failure_now(report: pytest.TestReport) -> None:
    """A failure's traceback goes to the terminal when it happens, so a run that dies later
    (the watchdog above, CI's limit) still shows what failed first."""
    if report.failed and _stderr_copy:
        text = f"\n{'=' * 30} FAILED {report.nodeid} ({report.when})\n{report.longreprtext}\n"
        os.write(_stderr_copy[0], text.encode(errors="replace"))


# --- a skipped test fails the run -------------------------------------------------------------


def _record_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _skips.append((report.nodeid, reason))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_skip(report)
    _report_failure_now(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_skip(report)  # a whole module skipped (pytest.skip(allow_module_level=True))


def _allowed(reason: str) -> str | None:
    return next((why for key, why in ALLOWED_SKIPS.items() if key in reason), None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skip is a test that did not run: the run fails, unless ALLOWED_SKIPS lists it."""
    if any(_allowed(reason) is None for _, reason in _skips) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _skips:
        return
    write = terminalreporter.write_line
    refused = [(test, reason) for test, reason in _skips if _allowed(reason) is None]
    allowed = [(test, reason) for test, reason in _skips if _allowed(reason) is not None]
    if refused:
        terminalreporter.section("SKIPPED TESTS FAIL THIS RUN", sep="!", red=True, bold=True)
        for test, reason in refused:
            write(f"{test}: {reason}", red=True, bold=True)
        write(f"{len(refused)} test(s) did not run. A test must run here or fail; only a "
              "missing system package that .ci/run installs may skip (ALLOWED_SKIPS in "
              "tests/conftest.py).", red=True, bold=True)
    if allowed:
        terminalreporter.section("TESTS SKIPPED: A SYSTEM PACKAGE IS MISSING", sep="!",
                                 yellow=True, bold=True)
        for test, reason in allowed:
            write(f"{test}: {reason}", yellow=True, bold=True)
            write(f"    => {_allowed(reason)}", yellow=True, bold=True)
