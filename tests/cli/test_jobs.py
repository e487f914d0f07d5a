"""``docworkers jobs …``, ``dlq …`` and ``stats`` on a real Redis; jobs made with the repo."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import Result

from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.queue import Failure, JobErrorInfo, JobStatus, RedisJobRepository

OnQueue = Callable[[Callable[[RedisJobRepository], Any]], Any]
_RISING = itertools.count(500)  # each dead job outranks every job queued before it


def enqueue(on_queue: OnQueue, filename: str, **options: Any) -> str:
    payload = {"filename": filename, "file_path": f"/nowhere/{filename}"}
    return str(on_queue(lambda repo: repo.enqueue(UPLOAD_JOB_TYPE, payload, **options)))


def make_dead(on_queue: OnQueue, filename: str) -> str:
    """A job that failed its only attempt with no retries left: dead-lettered."""

    async def action(repo: RedisJobRepository) -> str:
        job_id = await repo.enqueue(UPLOAD_JOB_TYPE, {"filename": filename, "file_path": "/x"},
                                    max_retries=0, priority=next(_RISING))
        (job,) = (await repo.reserve("test-worker", 1, 30.0)).jobs
        assert job.id == job_id
        status = await repo.fail(job.id, job.token,
                                 Failure.retry(JobErrorInfo("timeout", "it took too long [x]")))
        assert status == JobStatus.DEAD
        return job_id

    return str(on_queue(action))


def status_of(cli: Callable[..., Result], job_id: str) -> str:
    shown = cli("jobs", "show", job_id, "--json")
    assert shown.exit_code == 0, shown.output
    return str(json.loads(shown.stdout)["status"])


def test_jobs_list_and_show(cli_env: dict[str, str], cli: Callable[..., Result],
                            on_queue: OnQueue) -> None:
    first = enqueue(on_queue, "first.pdf")
    second = enqueue(on_queue, "second [draft].pdf", priority=5)
    table = cli("jobs", "list")
    assert table.exit_code == 0, table.output
    assert first in table.stdout and second in table.stdout
    assert "second [draft].pdf" in table.stdout  # printed literally, not as rich markup
    assert f"Jobs in queue '{cli_env['DOCWORKERS_QUEUE']}'" in table.stdout
    listed = json.loads(cli("jobs", "list", "--json", "--limit", "1").stdout)
    assert [job["id"] for job in listed] == [second]
    assert cli("jobs", "list", "--status", "failed").stdout.startswith("No jobs in queue")
    shown = cli("jobs", "show", second)
    assert shown.exit_code == 0 and "second [draft].pdf" in shown.stdout
    assert "queued" in shown.stdout and "payload" in shown.stdout
    assert json.loads(cli("jobs", "show", second, "--json").stdout)["priority"] == 5


def test_jobs_cancel_and_retry(cli_env: dict[str, str], cli: Callable[..., Result],
                               on_queue: OnQueue) -> None:
    job_id = enqueue(on_queue, "a.pdf")
    cancelled = cli("jobs", "cancel", job_id)
    assert cancelled.exit_code == 0 and f"{job_id}: cancelled" in cancelled.stdout
    assert status_of(cli, job_id) == "cancelled"
    again = cli("jobs", "cancel", job_id)
    assert again.exit_code == 1 and "nothing to cancel" in again.stderr
    retried = cli("jobs", "retry", job_id)
    assert retried.exit_code == 0 and "queued again" in retried.stdout
    assert status_of(cli, job_id) == "queued"
    refused = cli("jobs", "retry", job_id)  # queued jobs cannot be requeued
    assert refused.exit_code == 1 and "only failed, dead, cancelled or pending" in refused.stderr


@pytest.mark.parametrize(("args", "code", "message"), [
    (["jobs", "show", "0123456789abcdef"], 1, "job '0123456789abcdef' not found"),
    (["jobs", "cancel", "0123456789abcdef"], 1, "job '0123456789abcdef' not found"),
    (["jobs", "show", "bad id!"], 2, "invalid job id"),
    (["jobs", "list", "--status", "sleeping"], 2, "valid statuses"),
])
def test_job_errors_name_the_problem(cli_env: dict[str, str], cli: Callable[..., Result],
                                     args: list[str], code: int, message: str) -> None:
    result = cli(*args)
    assert result.exit_code == code and message in result.stderr, result.output
    assert "Traceback" not in result.output


def test_dead_letter_queue_list_show_requeue_and_purge(
        cli_env: dict[str, str], cli: Callable[..., Result], on_queue: OnQueue) -> None:
    assert "is empty" in cli("dlq", "list").stdout
    dead = make_dead(on_queue, "broken.pdf")
    listed = cli("dlq", "list")
    assert listed.exit_code == 0 and dead in listed.stdout
    assert "timeout" in listed.stdout and "it took too long [x]" in listed.stdout
    shown = cli("dlq", "show", dead)
    assert shown.exit_code == 0 and "dead" in shown.stdout and "timeout" in shown.stdout
    requeued = cli("dlq", "requeue", dead)
    assert requeued.exit_code == 0 and status_of(cli, dead) == "queued"

    others = [make_dead(on_queue, f"b{i}.pdf") for i in range(2)]
    everything = cli("dlq", "requeue", "--all")
    assert everything.exit_code == 0 and "Queued 2 dead job(s) again" in everything.stdout
    assert {status_of(cli, job_id) for job_id in others} == {"queued"}
    assert cli("dlq", "requeue").exit_code == 2  # neither ids nor --all

    doomed = make_dead(on_queue, "c.pdf")
    declined = cli("dlq", "purge", input="n\n")
    assert declined.exit_code == 1 and status_of(cli, doomed) == "dead"
    purged = cli("dlq", "purge", "--yes")
    assert purged.exit_code == 0 and "Deleted 1 dead job(s)" in purged.stdout
    assert cli("jobs", "show", doomed).exit_code == 1
    assert json.loads(cli("dlq", "list", "--json").stdout) == []


def test_stats_show_depth_totals_and_success_rate(
        cli_env: dict[str, str], cli: Callable[..., Result], on_queue: OnQueue) -> None:
    enqueue(on_queue, "waiting.pdf")
    make_dead(on_queue, "dead.pdf")

    async def complete_one(repo: RedisJobRepository) -> None:
        await repo.enqueue(UPLOAD_JOB_TYPE, {"filename": "ok.pdf", "file_path": "/x"},
                           priority=1000)
        (job,) = (await repo.reserve("test-worker", 1, 30.0)).jobs
        await repo.complete(job.id, job.token, {"chunk_count": 3})

    on_queue(complete_one)
    table = cli("stats")
    assert table.exit_code == 0, table.output
    assert "success rate" in table.stdout and "50.0%" in table.stdout
    assert "No live workers" in table.stdout
    data = json.loads(cli("stats", "--json").stdout)
    assert data["by_status"]["queued"] == 1 and data["by_status"]["dead"] == 1
    assert data["by_status"]["completed"] == 1 and data["success_rate"] == 0.5
