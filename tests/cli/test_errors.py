"""Helpful errors: which server, what to check, a one-line message and a meaningful exit code."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from typer.testing import Result

from docworkers.errors import RepositoryConnectionError
from docworkers.ingest.document_repository import (
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
)

UNREACHABLE = "redis://127.0.0.1:1/0"
CLOSED_CHROMA = "http://127.0.0.1:1"
DOCUMENT = "text/fake-text.txt"  # in the corpus; {corpus} in an argument is the corpus folder

# Every command that talks to Redis, with arguments that get it as far as Redis.
REDIS_COMMANDS = [
    "jobs list", "jobs show deadbeef", "jobs cancel deadbeef", "jobs retry deadbeef",
    "jobs submit document_delete -p {\"document_id\":\"deadbeef\"}",
    "dlq list", "dlq show deadbeef", "dlq requeue --all", "dlq purge --yes", "stats",
    "documents list", "documents show deadbeef", "documents delete deadbeef --yes",
    "collections list", "collections delete library --yes", "collections reindex library",
    "search bread", f"import {{corpus}}/{DOCUMENT}", f"ingest --no-wait {{corpus}}/{DOCUMENT}",
]
# Progress a command prints on stderr before it reaches the server (not an error line).
PROGRESS = {"ingest": "Found 1 document."}


def only_error_line(command: str, stderr: str) -> str:
    """The one line of ``stderr`` (after the command's known progress line, if any)."""
    lines = stderr.splitlines()
    if (progress := PROGRESS.get(command.split()[0])) and lines[:1] == [progress]:
        lines = lines[1:]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_unreachable_redis_names_the_url_without_a_traceback(
        local_stack_env: Path, console_script: Callable[..., subprocess.CompletedProcess[str]],
        process_env_without_settings: dict[str, str]) -> None:
    env = {**process_env_without_settings, "DOCWORKERS_REDIS_URL": UNREACHABLE}
    result = console_script("jobs", "list", env=env, cwd=local_stack_env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: cannot reach Redis at redis://127.0.0.1:1/0")
    assert "DOCWORKERS_REDIS_URL" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_debug_shows_the_traceback(local_stack_env: Path, cli: Callable[..., Result],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCWORKERS_REDIS_URL", UNREACHABLE)
    result = cli("--debug", "stats")
    assert isinstance(result.exception, RepositoryConnectionError)
    monkeypatch.setenv("DOCWORKERS_LOG_LEVEL", "DEBUG")
    assert isinstance(cli("stats").exception, RepositoryConnectionError)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("DOCWORKERS_CONCURRENCY", "0", "concurrency: must be at least 1"),
    ("DOCWORKERS_REDIS_URL", "localhost:6379", "redis_url: 'localhost:6379' is not a URL"),
    ("DOCWORKERS_CONCURENCY", "2", "DOCWORKERS_CONCURENCY: unknown setting"),
])
def test_bad_settings_are_configuration_errors(local_stack_env: Path, cli: Callable[..., Result],
                                               monkeypatch: pytest.MonkeyPatch, variable: str,
                                               value: str, message: str) -> None:
    monkeypatch.setenv(variable, value)
    result = cli("stats")
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert cli("jobs", "--help").exit_code == 0  # help still works


def test_bad_arguments_show_usage(local_stack_env: Path, cli: Callable[..., Result]) -> None:
    result = cli("search", "q", "-k", "0")
    assert result.exit_code == 2 and "Usage" in result.output
    assert cli("frobnicate").exit_code == 2
    assert cli().exit_code in (0, 2) and "ingest" in cli("--help").stdout


@pytest.mark.parametrize("command", REDIS_COMMANDS)
def test_every_command_reports_redis_down_in_one_line(
        command: str, tmp_path: Path, corpus: Path,
        console_script: Callable[..., subprocess.CompletedProcess[str]],
        process_env_without_settings: dict[str, str]) -> None:
    env = {**process_env_without_settings, "COLUMNS": "80",  # one line even when narrow
           "DOCWORKERS_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0",
           "DOCWORKERS_CHROMA_PATH": str(tmp_path / "chroma"),
           "DOCWORKERS_STORAGE_DIR": str(tmp_path / "uploads")}
    args = [arg.replace("{corpus}", str(corpus)) for arg in command.split()]
    result = console_script(*args, env=env, cwd=tmp_path)
    line = only_error_line(command, result.stderr)
    assert result.returncode == 1, result.stderr  # EXIT_FAILURE: a server failed
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in line
    assert "hunter2" not in result.stderr + result.stdout  # the URL, not its password


def register(redis_url: str, document_id: str) -> None:
    """A completed document in the registry (its chunks would be in Chroma)."""

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await DocumentRepository(client).register(DocumentRecord(
                document_id=document_id, collection="library", filename="a.txt",
                status=DocumentStatus.COMPLETED))
        finally:
            await client.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("command", [
    "search bread", "collections list", "collections delete library --yes",
    "documents delete 0123456789abcdef0123456789abcdef --yes",
])
def test_every_command_reports_a_chroma_server_down_in_one_line(
        command: str, tmp_path: Path, process_env: dict[str, str],
        console_script: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    register(process_env["DOCWORKERS_REDIS_URL"], "0123456789abcdef0123456789abcdef")
    env = {key: value for key, value in process_env.items() if key != "DOCWORKERS_CHROMA_PATH"}
    env |= {"DOCWORKERS_CHROMA_URL": CLOSED_CHROMA, "COLUMNS": "80"}
    result = console_script(*command.split(), env=env, cwd=tmp_path)
    line = only_error_line(command, result.stderr)
    assert result.returncode == 1, result.stderr
    assert f"Chroma server at {CLOSED_CHROMA}" in line


@pytest.mark.parametrize(("command", "message"), [
    ("jobs show deadbeef", "job 'deadbeef' not found in the queues of {queue!r}"),
    ("jobs cancel deadbeef", "job 'deadbeef' not found in the queues of {queue!r}"),
    ("jobs retry deadbeef", "job 'deadbeef' not found in the queues of {queue!r}"),
    ("dlq show deadbeef", "job 'deadbeef' not found in the queues of {queue!r}"),
    ("dlq requeue deadbeef", "job 'deadbeef' not found in the queues of {queue!r}"),
    ("documents show nope", "document 'nope' not found"),
    ("documents delete nope --yes", "document 'nope' not found"),
    ("collections delete nope --yes", "collection 'nope' not found"),
])
def test_not_found_has_one_form_and_exit_code_everywhere(
        cli_env: dict[str, str], cli: Callable[..., Result], command: str,
        message: str) -> None:
    result = cli(*command.split())
    expected = message.format(queue=cli_env["DOCWORKERS_QUEUE"])
    assert (result.exit_code, result.stderr) == (1, f"error: {expected}\n"), result.output
