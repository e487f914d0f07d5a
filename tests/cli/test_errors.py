"""Helpful errors: which server, what to check, a one-line message and a meaningful exit code."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from docworkers.errors import RepositoryConnectionError

UNREACHABLE = "redis://127.0.0.1:1/0"


def test_unreachable_redis_names_the_url_without_a_traceback(
        no_redis_env: Path, console_script: Callable[..., subprocess.CompletedProcess[str]],
        process_env_without_settings: dict[str, str]) -> None:
    env = {**process_env_without_settings, "DOCWORKERS_REDIS_URL": UNREACHABLE}
    result = console_script("jobs", "list", env=env, cwd=no_redis_env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: cannot reach Redis at redis://127.0.0.1:1/0")
    assert "DOCWORKERS_REDIS_URL" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_debug_shows_the_traceback(no_redis_env: Path, cli: Callable[..., Result],
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
def test_bad_settings_are_configuration_errors(no_redis_env: Path, cli: Callable[..., Result],
                                               monkeypatch: pytest.MonkeyPatch, variable: str,
                                               value: str, message: str) -> None:
    monkeypatch.setenv(variable, value)
    result = cli("stats")
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert cli("jobs", "--help").exit_code == 0  # help still works


def test_bad_arguments_show_usage(no_redis_env: Path, cli: Callable[..., Result]) -> None:
    result = cli("search", "q", "-k", "0")
    assert result.exit_code == 2 and "Usage" in result.output
    assert cli("frobnicate").exit_code == 2
    assert cli().exit_code in (0, 2) and "ingest" in cli("--help").stdout
