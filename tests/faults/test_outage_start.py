"""Starting during an outage: `docworkers worker` waits for Redis or the Chroma server with
capped backoff (logging each attempt) and starts working once they are back; `--fail-fast`
keeps the old one-line exit 1; SIGTERM while waiting is a clean exit.

The processes are real (`python -m docworkers.cli`), and so are the servers that come up late
on the port they were told: an embedded valkey (EmbeddedRedis) and `chroma run` (ChromaServer).
Every wait is for an event (a log line, a job state, a process exit) with a generous limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from manual_clock import ManualClock
from server_start import start_chroma, start_valkey

from docworkers.embedded import EmbeddedRedis
from docworkers.errors import ConfigurationError, RepositoryConnectionError
from docworkers.queue import JobStatus, RedisJobRepository, RepositoryConfig
from docworkers.settings import Settings
from docworkers.stack.servers import free_port
from docworkers.workers.startup import start_when_ready

LIMIT = 120.0  # seconds any one awaited event may take on a loaded machine



class WorkerProcess:
    """``docworkers <args>`` in a subprocess, its output in a log file we can wait on."""

    def __init__(self, args: list[str], env: dict[str, str], tmp_path: Path) -> None:
        self.log_path = tmp_path / f"{args[0]}-{uuid.uuid4().hex[:6]}.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "docworkers.cli", *args],
                                            env=env, cwd=tmp_path, stdout=log,
                                            stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, predicate: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + LIMIT
        while not predicate(text := self.output):
            assert self.process.poll() is None, f"exited before {what}:\n{text}"
            assert time.monotonic() < deadline, f"no {what} in {LIMIT}s:\n{text}"
            time.sleep(0.1)
        return text

    def wait_for_attempts(self, count: int) -> str:
        return self.wait_for(lambda text: f"start attempt {count} failed" in text,
                             f"start attempt {count}")

    def exit_code(self) -> int:
        try:
            return self.process.wait(LIMIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {LIMIT}s:\n{self.output}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.exit_code()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment for a worker process (no .env of the developer's: cwd is tmp)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOCWORKERS_")}
    return {**base, "COLUMNS": "1000", "DOCWORKERS_QUEUE": f"outage-{uuid.uuid4().hex[:8]}",
            "DOCWORKERS_CHROMA_PATH": str(tmp_path / "chroma"),
            "DOCWORKERS_STORAGE_DIR": str(tmp_path / "uploads")}


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.kill()


def run_collection_delete(url: str, base_queue: str) -> None:
    """Enqueue one collection_delete job on its queue and wait until a worker completed it."""

    async def go() -> None:
        repo = RedisJobRepository.from_url(url, RepositoryConfig(
            queue=f"{base_queue}.collection_delete"))
        try:
            job_id = await repo.enqueue("collection_delete", {"collection": "gone"})
            while not (job := await repo.get_job(job_id)).is_terminal:
                await asyncio.sleep(0.05)
            assert job.status == JobStatus.COMPLETED, job.error
        finally:
            await repo.close()

    asyncio.run(asyncio.wait_for(go(), LIMIT))


def test_a_worker_started_before_redis_waits_for_it_then_works(
        env: dict[str, str], tmp_path: Path, processes: list[WorkerProcess]) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    worker = WorkerProcess(["worker", "--type", "collection_delete"],
                           {**env, "DOCWORKERS_REDIS_URL": url}, tmp_path)
    processes.append(worker)
    text = worker.wait_for_attempts(2)  # still running, retrying, and saying so
    assert f"cannot reach Redis at {url}" in text
    server = EmbeddedRedis(base_dir=tmp_path / "redis", port=port)
    start_valkey(server)
    try:
        worker.wait_for(lambda t: "workers: " in t, "the workers' start")
        run_collection_delete(url, env["DOCWORKERS_QUEUE"])
        assert worker.stop() == 0, worker.output
    finally:
        worker.kill()
        server.stop()


def test_a_worker_started_before_the_chroma_server_waits_for_it_then_works(
        env: dict[str, str], redis_url: str, clean_redis: redis.Redis, tmp_path: Path,
        processes: list[WorkerProcess]) -> None:
    from docworkers.ingest.chroma_server import ChromaServer

    port = free_port()
    chroma_url = f"http://127.0.0.1:{port}"
    worker = WorkerProcess(["worker", "--type", "collection_delete"],
                           {**env, "DOCWORKERS_REDIS_URL": redis_url,
                            "DOCWORKERS_CHROMA_URL": chroma_url}, tmp_path)
    processes.append(worker)
    text = worker.wait_for_attempts(2)
    assert f"Chroma server at {chroma_url}" in text
    server = ChromaServer(tmp_path / "chroma-server", port=port)
    start_chroma(server)  # or the test fails with the server's output
    try:
        worker.wait_for(lambda t: "workers: " in t, "the workers' start")
        run_collection_delete(redis_url, env["DOCWORKERS_QUEUE"])
        assert worker.stop() == 0, worker.output
    finally:
        worker.kill()
        server.stop()


@pytest.mark.parametrize("down", ["redis", "chroma"])
def test_fail_fast_exits_1_with_one_line_naming_the_url(
        down: str, env: dict[str, str], redis_url: str, tmp_path: Path,
        processes: list[WorkerProcess]) -> None:
    dead = free_port()
    if down == "redis":
        url = f"redis://127.0.0.1:{dead}/0"
        settings = {"DOCWORKERS_REDIS_URL": url}
    else:
        url = f"http://127.0.0.1:{dead}"
        settings = {"DOCWORKERS_REDIS_URL": redis_url, "DOCWORKERS_CHROMA_URL": url}
    worker = WorkerProcess(["worker", "--type", "collection_delete", "--fail-fast"],
                           {**env, **settings}, tmp_path)
    processes.append(worker)
    assert worker.exit_code() == 1, worker.output
    errors = [line for line in worker.output.splitlines() if line.strip()]
    assert len(errors) == 1, worker.output  # one line, no retries logged, no traceback
    assert errors[0].startswith("error: ") and url in errors[0], errors[0]


def test_sigterm_while_waiting_exits_cleanly(env: dict[str, str], tmp_path: Path,
                                             processes: list[WorkerProcess]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = WorkerProcess(["worker", "--type", "collection_delete"],
                           {**env, "DOCWORKERS_REDIS_URL": url}, tmp_path)
    processes.append(worker)
    worker.wait_for_attempts(1)
    assert worker.stop() == 0, worker.output
    assert "stopped before the workers could start" in worker.output
    assert "Traceback" not in worker.output


def test_the_startup_timeout_gives_up_with_the_last_error(
        env: dict[str, str], tmp_path: Path, processes: list[WorkerProcess]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = WorkerProcess(["worker", "--type", "collection_delete"],
                           {**env, "DOCWORKERS_REDIS_URL": url,
                            "DOCWORKERS_STARTUP_TIMEOUT": "1"}, tmp_path)
    processes.append(worker)
    assert worker.exit_code() == 1, worker.output
    assert "giving up after" in worker.output  # however many attempts fitted in 1 s
    assert f"error: cannot reach Redis at {url}" in worker.output


def test_serve_with_workers_waits_too_and_stops_on_sigterm(
        env: dict[str, str], tmp_path: Path, processes: list[WorkerProcess]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    server = WorkerProcess(["serve", "--port", str(free_port()), "--with-workers", "1"],
                           {**env, "DOCWORKERS_REDIS_URL": url}, tmp_path)
    processes.append(server)
    assert f"cannot reach Redis at {url}" in server.wait_for_attempts(1)
    assert server.stop() == 0, server.output
    quick = WorkerProcess(["serve", "--port", str(free_port()), "--with-workers", "1",
                           "--fail-fast"], {**env, "DOCWORKERS_REDIS_URL": url}, tmp_path)
    processes.append(quick)
    assert quick.exit_code() == 1, quick.output
    assert f"error: cannot reach Redis at {url}" in quick.output


# -- the retry loop alone (workers/startup.py) ---------------------------------------------


class Flaky:
    """An attempt that fails ``failures`` times with ``error``, then returns "started"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "started"


LOG = logging.getLogger("test.startup")
DOWN = RepositoryConnectionError("cannot reach Redis at redis://nowhere")


async def test_retries_until_the_attempt_works_logging_each_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    attempt = Flaky(3, DOWN)
    with caplog.at_level(logging.WARNING, logger="test.startup"):
        result = await start_when_ready(attempt, retry_on=(RepositoryConnectionError,),
                                        stop=asyncio.Event(), logger=LOG, base=0.001,
                                        cap=0.002)
    assert (result, attempt.calls) == ("started", 4)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        f"start attempt {n} failed" for n in (1, 2, 3)]
    assert all("redis://nowhere" in r.getMessage() for r in caplog.records)


async def test_other_errors_and_a_zero_timeout_fail_at_once() -> None:
    wrong = Flaky(5, ConfigurationError("redis_url", "bad"))
    with pytest.raises(ConfigurationError):
        await start_when_ready(wrong, retry_on=(RepositoryConnectionError,),
                               stop=asyncio.Event(), logger=LOG, base=0.001, cap=0.002)
    assert wrong.calls == 1
    down = Flaky(5, DOWN)
    with pytest.raises(RepositoryConnectionError):
        await start_when_ready(down, retry_on=(RepositoryConnectionError,),
                               stop=asyncio.Event(), timeout=0, logger=LOG)
    assert down.calls == 1


async def test_the_timeout_bounds_the_whole_wait_on_the_clock() -> None:
    clock = ManualClock(0.0)
    calls = 0

    async def slow_failure() -> None:
        nonlocal calls
        calls += 1
        clock.now += 4.0  # each attempt takes 4 s of the 10 s allowed
        raise DOWN

    with pytest.raises(RepositoryConnectionError):
        await start_when_ready(slow_failure, retry_on=(RepositoryConnectionError,),
                               stop=asyncio.Event(), timeout=10, logger=LOG, base=0.001,
                               cap=0.002, clock=clock)
    assert calls == 3  # at 4 s and 8 s there was time left; at 12 s there was none


async def test_a_stop_ends_the_pause_and_the_attempt_in_flight() -> None:
    stop = asyncio.Event()

    async def fail_then_stop() -> None:
        stop.set()  # as SIGTERM would, between this attempt and the next
        raise DOWN

    paused = start_when_ready(fail_then_stop, retry_on=(RepositoryConnectionError,),
                              stop=stop, logger=LOG, base=1000, cap=1000)
    assert await asyncio.wait_for(paused, LIMIT) is None
    stop = asyncio.Event()
    hanging = asyncio.Event()
    cancelled = False

    async def hang() -> None:
        nonlocal cancelled
        hanging.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled = True
            raise

    waiting = asyncio.ensure_future(start_when_ready(
        hang, retry_on=(RepositoryConnectionError,), stop=stop, logger=LOG))
    await asyncio.wait_for(hanging.wait(), LIMIT)
    stop.set()
    assert await asyncio.wait_for(waiting, LIMIT) is None
    assert cancelled


def test_the_startup_timeout_setting() -> None:
    assert Settings().startup_timeout is None  # keep trying
    assert Settings.from_env({"DOCWORKERS_STARTUP_TIMEOUT": "30"},
                             env_file=None).startup_timeout == 30.0
    with pytest.raises(ConfigurationError, match="startup_timeout"):
        Settings(startup_timeout=-1)
