"""``docworkers worker --max-processes``: worker processes follow the backlog, on real servers.

A real `chroma run` (more than one process needs one), a real Redis, and collection_delete jobs
(light: no model), enqueued before the worker starts so the first look sees the backlog.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from server_start import start_chroma
from typer.testing import Result

from docworkers.errors import ConfigurationError
from docworkers.ingest.chroma_server import ChromaServer
from docworkers.ingest.jobs.kinds import queue_for
from docworkers.queue import JobSpec, RedisJobRepository, RepositoryConfig
from docworkers.runtime import Runtime
from docworkers.settings import Settings


@pytest.fixture
def chroma_url(tmp_path: Path) -> Iterator[str]:
    server = ChromaServer(tmp_path / "chroma-server")
    try:
        yield start_chroma(server)
    finally:
        server.stop()


def test_processes_are_added_for_a_backlog_and_retired_after_it(
        process_env: dict[str, str], cli: Callable[..., Result], chroma_url: str,
        redis_url: str, tmp_path: Path) -> None:
    base = process_env["DOCWORKERS_QUEUE"]
    queue = queue_for("collection_delete", base)

    async def enqueue() -> list[str]:
        async with RedisJobRepository.from_url(redis_url, RepositoryConfig(queue=queue)) as repo:
            return await repo.enqueue_many([
                JobSpec("collection_delete", {"collection": f"gone-{i}"}) for i in range(12)])

    ids = asyncio.run(enqueue())
    env = {**process_env, "DOCWORKERS_CHROMA_URL": chroma_url}
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "docworkers.cli", "worker", "--type", "collection_delete",
             "--processes", "1", "--max-processes", "2", "--jobs-per-process", "3",
             "--scale-down-delay", "1", "--concurrency", "4", "--min-concurrency", "1"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        supervisors: list[dict[str, object]] = []
        workers: list[dict[str, object]] = []
        while "retiring a worker process (2 -> 1)" not in log_path.read_text():
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            stats = json.loads(cli("stats", "--json").stdout)
            supervisors = stats.get("supervisors") or supervisors
            workers = stats.get("workers") or workers
            time.sleep(0.3)
        assert supervisors and supervisors[0]["max_processes"] == 2
        assert supervisors[0]["queues"] == [queue]
        assert workers and {(w["min_concurrency"], w["max_concurrency"]) for w in workers} \
            == {(1, 4)}  # each process's worker autoscales too
        assert {w["scaling"] for w in workers} != {"fixed"}
        shown = cli("stats").stdout  # the table view, while the pool still runs
        assert "Worker processes" in shown and "1-2" in shown
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
    text = log_path.read_text()
    assert code == 0, text
    assert "backlog of 12: 1 -> 2 worker processes" in text
    shown = [json.loads(cli("jobs", "show", job_id, "--json").stdout) for job_id in ids]
    assert {job["status"] for job in shown} == {"completed"}
    assert json.loads(cli("stats", "--json").stdout).get("supervisors") == []  # withdrawn


def test_max_processes_below_processes_is_a_usage_error(
        cli_env: dict[str, str], cli: Callable[..., Result]) -> None:
    result = cli("worker", "--processes", "3", "--max-processes", "2")
    assert result.exit_code == 2
    assert "--max-processes" in result.stderr and "at least" in result.stderr


def test_autoscaling_settings_reach_the_workers_and_are_validated(
        cli_env: dict[str, str]) -> None:
    settings = Settings.from_env({**cli_env, "DOCWORKERS_MIN_CONCURRENCY": "2",
                                  "DOCWORKERS_MEMORY_LIMIT_MB": "900"}, env_file=None)
    runtime = Runtime(settings)
    upload = runtime.worker_config("w", 8)
    assert (upload.min_concurrency, upload.concurrency, upload.memory_limit_mb) == (2, 8, 900)
    rare = runtime.worker_config("w", 1)  # a type that runs one job at a time
    assert (rare.min_concurrency, rare.concurrency) == (1, 1)
    for name, value in (("DOCWORKERS_MIN_CONCURRENCY", "0"),
                        ("DOCWORKERS_MEMORY_LIMIT_MB", "-5")):
        with pytest.raises(ConfigurationError, match=name.removeprefix("DOCWORKERS_").lower()):
            Settings.from_env({**cli_env, name: value}, env_file=None)
