"""Fixtures for the command line: a clean DOCWORKERS_* environment pointing at real servers."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from typer.testing import CliRunner, Result

from docworkers.cli import app
from docworkers.queue import RedisJobRepository, RepositoryConfig

T = TypeVar("T")
VENV_BIN = Path(sys.executable).parent


def clean_environ() -> dict[str, str]:
    """This process's environment without any DOCWORKERS_* setting, wide for rich tables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCWORKERS_")}
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Commands run in this process configure logging; leave it as the next test expects."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(named.get(name, logging.NOTSET))


@pytest.fixture
def cli_env(redis_url: str, clean_redis: redis.Redis, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """DOCWORKERS_* for a test: the test Redis, its own queue, Chroma and storage in tmp_path.

    Also sets them in os.environ (for CliRunner) and runs the test in tmp_path, so no .env
    file of the developer's is read.
    """
    for key in list(os.environ):
        if key.startswith("DOCWORKERS_"):
            monkeypatch.delenv(key)
    env = {
        "DOCWORKERS_REDIS_URL": redis_url,
        "DOCWORKERS_QUEUE": f"cli-{uuid.uuid4().hex[:8]}",
        "DOCWORKERS_CHROMA_PATH": str(tmp_path / "chroma"),
        "DOCWORKERS_STORAGE_DIR": str(tmp_path / "uploads"),
        "DOCWORKERS_RETRY_DELAY": "0",
    }
    for key, value in {**env, "COLUMNS": "200"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return env


@pytest.fixture
def process_env(cli_env: dict[str, str]) -> dict[str, str]:
    """The whole environment for a ``docworkers`` subprocess of this test."""
    return {**clean_environ(), **cli_env}


@pytest.fixture
def background(process_env: dict[str, str], tmp_path: Path
               ) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``background("worker", "worker", "-t", "x")`` starts ``docworkers worker -t x`` in
    tmp_path with this test's environment, its output in tmp_path/worker.log; whatever is
    still running at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own copy
            started.append(subprocess.Popen(
                [sys.executable, "-m", "docworkers.cli", *args], env=process_env,
                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def process_env_without_settings() -> dict[str, str]:
    """The environment for a subprocess with no DOCWORKERS_* setting at all."""
    return clean_environ()


@pytest.fixture
def local_stack_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No DOCWORKERS_* at all (so commands use the local stack of tmp_path/.docworkers), cwd
    in tmp_path; the stack's servers are stopped at the end."""
    from docworkers.stack import LocalStack

    for key in list(os.environ):
        if key.startswith("DOCWORKERS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    LocalStack(tmp_path / ".docworkers").down()


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("jobs", "list")`` runs the command in this process and returns its Result."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke


@pytest.fixture
def on_queue(cli_env: dict[str, str]) -> Callable[[Callable[[RedisJobRepository], Awaitable[T]]],
                                                   T]:
    """``on_queue(lambda repo: repo.enqueue(...))``: run a coroutine on the test's queue."""

    def call(action: Callable[[RedisJobRepository], Awaitable[T]]) -> T:
        async def main() -> T:
            repo = RedisJobRepository.from_url(cli_env["DOCWORKERS_REDIS_URL"],
                                               RepositoryConfig(queue=cli_env["DOCWORKERS_QUEUE"]))
            try:
                return await action(repo)
            finally:
                await repo.close()

        return asyncio.run(main())

    return call


@pytest.fixture
def console_script() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Run the installed ``docworkers`` script in a subprocess."""

    def run(*args: str, env: dict[str, Any], cwd: Path, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(VENV_BIN / "docworkers"), *args], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, check=False)

    yield run
