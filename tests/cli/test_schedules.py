"""Recurring jobs from a schedules file: validated at start-up, run by `docworkers worker`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from docworkers.cli.worker import document_schedules
from docworkers.errors import ConfigurationError

GOOD = """
[[schedules]]
name = "nightly-reindex"
type = "vector_reindex"
cron = "0 2 * * *"
timezone = "Europe/Paris"
payload = { collection = "risk", chunking_strategy = "sentence" }

[[schedules]]
name = "sweep"
type = "collection_delete"
every = 0.5
payload = { collection = "scratch" }
"""


def test_a_schedules_file_becomes_schedules_on_each_types_queue(tmp_path: Path) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(GOOD)
    reindex, sweep = document_schedules(path, "risk-q")
    assert (reindex.name, reindex.job_type, reindex.cron, reindex.queue) == (
        "nightly-reindex", "vector_reindex", "0 2 * * *", "risk-q.vector_reindex")
    assert reindex.payload["chunking_strategy"] == "sentence"
    assert (sweep.every, sweep.queue, sweep.payload) == (0.5, "risk-q.collection_delete",
                                                         {"collection": "scratch"})


@pytest.mark.parametrize(("text", "field", "words"), [
    ('[[schedules]]\nname = "a"\ntype = "nope"\nevery = 5', "schedules[0].type",
     "unknown job type"),
    ('[[schedules]]\nname = "a"\ntype = "collection_delete"\nevery = 5\n'
     'payload = { colection = "xyz" }', "schedules[0].payload", "colection"),
    ('[[schedules]]\nname = "a"\ntype = "collection_delete"\ncron = "every day"\n'
     'payload = { collection = "xyz" }', "schedules[0].cron", "not a cron expression"),
    ('[[schedules]]\nname = "a"\ntype = "collection_delete"\nevry = 5', "schedules[0].evry",
     "unknown key"),
    ('[[schedules]]\ntype = "collection_delete"\nevery = 5', "schedules[0].name", "required"),
    ("[[schedules]\n", "", "not valid TOML"),
    ('[[schedules]]\nname = "a"\ntype = "collection_delete"\nevery = 5\n'
     'payload = { collection = "xyz" }\n[[schedules]]\nname = "a"\ntype = "collection_delete"\n'
     'every = 9\npayload = { collection = "yyy" }', "name", "used twice"),
])
def test_mistakes_name_the_file_entry_and_field(tmp_path: Path, text: str, field: str,
                                                words: str) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        document_schedules(path, "q")
    assert caught.value.field == (f"{path}: {field}" if field else str(path))
    assert words in caught.value.problem


def test_the_worker_refuses_a_bad_file_before_starting(
        cli_env: dict[str, str], cli: Callable[..., Result], tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[schedules]]\nname = "a"\ntype = "collection_delete"\nevery = 5\n'
                    'payload = { colection = "xyz" }')
    result = cli("worker", "--schedules", str(path))
    assert result.exit_code == 2
    assert "schedules[0].payload" in result.stderr and "colection" in result.stderr
    missing = cli("worker", "--schedules", str(tmp_path / "missing.toml"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


def test_a_worker_process_enqueues_and_runs_the_recurring_jobs(
        process_env: dict[str, str], cli: Callable[..., Result], tmp_path: Path) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(GOOD)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "docworkers.cli", "worker", "--type", "collection_delete",
             "--schedules", str(path)],
            env=process_env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            listed = json.loads(cli("jobs", "list", "--type", "collection_delete",
                                    "--status", "completed", "--json").stdout)
            if len(listed) >= 2:
                break
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
    assert code == 0, log_path.read_text()
    ids = [job["id"] for job in listed]
    assert all(job_id.startswith("sched:sweep:") for job_id in ids)  # one id per tick
    assert len(set(ids)) == len(ids)
    assert "scheduler started with 2 schedule(s)" in log_path.read_text()
