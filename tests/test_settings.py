"""Settings: each default written once (the worker settings are WorkerConfig's), variables read
by the settings' declared types, and the README's two configuration tables agreeing with the
code."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from docworkers.errors import ConfigurationError
from docworkers.queue import RepositoryConfig
from docworkers.settings import Settings
from docworkers.workers import WorkerConfig
from docworkers.workers.config import CPU_BOUND_CONCURRENCY, DEFAULT_CONCURRENCY

README = Path(__file__).resolve().parents[1] / "README.md"
WORKER_SETTINGS = ("max_retries", "retry_delay", "lease_timeout",
                   "shutdown_timeout", "log_level")


def test_the_worker_settings_default_to_the_worker_configs_defaults() -> None:
    settings, worker = Settings(), WorkerConfig(worker_name="w")
    for name in WORKER_SETTINGS:
        assert getattr(settings, name) == getattr(worker, name), name
    assert settings.lease_timeout == 30.0
    # concurrency sets the CPU-bound upload workers': their own default, fewer slots than a
    # generic worker's (a WorkerConfig leaves it at 0: each worker class's own)
    assert settings.concurrency == CPU_BOUND_CONCURRENCY == 3 < DEFAULT_CONCURRENCY
    assert worker.concurrency == 0
    assert RepositoryConfig().default_max_retries == worker.max_retries


@pytest.mark.parametrize(("variable", "raw", "name", "value"), [
    ("DOCWORKERS_CONCURRENCY", "7", "concurrency", 7),
    ("DOCWORKERS_LEASE_TIMEOUT", "12.5", "lease_timeout", 12.5),
    ("DOCWORKERS_MIN_CONCURRENCY", "2", "min_concurrency", 2),  # int | None
    ("DOCWORKERS_STARTUP_TIMEOUT", "3", "startup_timeout", 3.0),  # float | None
    ("DOCWORKERS_QUEUE", "42", "queue", "42"),  # a str stays a str, even of digits
    ("DOCWORKERS_REDIS_URL", "redis://h:1/0", "redis_url", "redis://h:1/0"),
])
def test_variables_are_read_as_their_settings_type(variable: str, raw: str, name: str,
                                                   value: Any) -> None:
    read = getattr(Settings.from_env({variable: raw}, env_file=None), name)
    assert read == value and type(read) is type(value)


def test_a_number_that_is_not_one_names_the_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"DOCWORKERS_MAX_RETRIES": "three"}, env_file=None)
    assert caught.value.field == "DOCWORKERS_MAX_RETRIES" and "not a number" in str(caught.value)
    with pytest.raises(ConfigurationError) as integer:
        Settings.from_env({"DOCWORKERS_CONCURRENCY": "2.5"}, env_file=None)
    assert integer.value.field == "DOCWORKERS_CONCURRENCY"


def test_the_readme_configuration_table_shows_the_settings_defaults() -> None:
    documented = dict(re.findall(r"^\| `(DOCWORKERS_[A-Z_]+)`[^|]*\| ([^|]+?) \|",
                                 README.read_text(), re.MULTILINE))
    for variable, default in Settings.table():
        shown = documented.get(variable)
        if shown is None:  # a row naming several variables lists the first only
            continue
        expected = {"None": "unset"}.get(default, default.replace("'", "`"))
        assert shown == expected, variable
    assert len(documented) >= 25


def test_the_readme_worker_table_shows_the_worker_configs_defaults() -> None:
    section = README.read_text().split("## Worker configuration")[1].split("\n## ")[0]
    rows: dict[str, str] = {}
    for names, defaults in re.findall(r"^\| (`[a-z_]+`(?: / `[a-z_]+`)*) \| ([^|]+?) \|",
                                      section, re.MULTILINE):
        rows.update(zip(re.findall(r"`([a-z_]+)`", names), defaults.split(" / "), strict=True))
    for field in fields(WorkerConfig):
        if field.default is MISSING:
            continue
        shown = rows[field.name].removesuffix(" s")
        if isinstance(field.default, float):
            assert float(shown) == field.default, field.name
        else:
            assert shown == str(field.default), field.name
