"""``docworkers queues pause|resume|list`` and the pause in ``docworkers stats``, on a real
Redis: a paused queue's jobs are not reserved; resuming lets them run."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from typer.testing import Result

from docworkers.ingest.jobs.kinds import UPLOAD_JOB_TYPE
from docworkers.queue import RedisJobRepository

T = TypeVar("T")
OnQueue = Callable[[Callable[[RedisJobRepository], Awaitable[T]]], T]


def test_pause_and_resume_from_the_command_line(
        cli_env: dict[str, str], cli: Callable[..., Result], on_queue: OnQueue[Any]) -> None:
    queue = cli_env["DOCWORKERS_QUEUE"]
    on_queue(lambda repo: repo.enqueue(UPLOAD_JOB_TYPE, {"filename": "a.pdf", "file_path": "/x"}))

    paused = cli("queues", "pause", queue)
    assert paused.exit_code == 0, paused.output
    assert f"Queue {queue!r} is paused" in paused.stdout
    assert "already" in cli("queues", "pause", queue).stdout

    async def reserve(repo: RedisJobRepository) -> int:
        return len((await repo.reserve("w", 10, lease=30)).jobs)

    assert on_queue(reserve) == 0  # no worker takes a job of a paused queue

    stats = cli("stats")
    assert stats.exit_code == 0, stats.output
    assert "paused queues" in stats.stdout and f"Paused: {queue} (no worker" in stats.stdout
    assert json.loads(cli("stats", "--json").stdout)["paused"] == [queue]
    listed = json.loads(cli("queues", "list", "--json").stdout)
    assert [row["queue"] for row in listed if row["paused"]] == [queue]
    assert listed[0]["queue"] == queue and listed[0]["by_status"]["queued"] == 1
    table = cli("queues", "list").stdout
    assert "paused" in table and "running" in table  # the job types' queues still run

    resumed = cli("queues", "resume", queue)
    assert resumed.exit_code == 0, resumed.output
    assert f"Queue {queue!r} runs" in resumed.stdout
    assert "was not paused" in cli("queues", "resume", queue).stdout
    assert json.loads(cli("stats", "--json").stdout)["paused"] == []
    assert re.search(r"paused queues +none", cli("stats").stdout)
    assert on_queue(reserve) == 1


def test_an_unknown_queue_is_not_found(cli_env: dict[str, str],
                                       cli: Callable[..., Result]) -> None:
    result = cli("queues", "pause", "no-such-queue")
    assert result.exit_code == 1
    assert "queue 'no-such-queue' not found" in result.output


def test_queues_list_fits_80_columns(cli_env: dict[str, str], cli: Callable[..., Result],
                                     on_queue: OnQueue[Any],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def fill(repo: RedisJobRepository) -> None:
        for _ in range(3):
            await repo.enqueue(UPLOAD_JOB_TYPE, {"filename": "a.pdf", "file_path": "/x"})
        await repo.pause()

    on_queue(fill)
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("queues", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line for line in lines if len(line) > 80] == [], result.stdout
    assert "…" not in result.stdout and "Workers" in result.stdout
    (row,) = [line for line in lines if "paused" in line]
    assert row.split()[-6:] == ["3", "0", "0", "0", "0", "0"]  # queued ... workers, whole
