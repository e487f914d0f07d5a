"""`docworkers jobs show` prints the job's timeline (and puts it in --json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from typer.testing import Result

from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository

OnQueue = Callable[[Callable[[RedisJobRepository], Any]], Any]


def test_jobs_show_prints_the_timeline(cli_env: dict[str, str], cli: Callable[..., Result],
                                       on_queue: OnQueue) -> None:
    async def retried(repo: RedisJobRepository) -> str:
        job_id = await repo.enqueue(UPLOAD_JOB_TYPE, {"filename": "t.pdf", "file_path": "/x"},
                                    priority=900)
        (job,) = (await repo.reserve("cli-worker", 1, 30.0)).jobs
        await repo.update_progress(job_id, job.token, 30, "parsing [page 2]", lease=30.0)
        await repo.fail(job_id, job.token,
                        Failure.retry(JobErrorInfo("busy", "the disk was busy"), delay=45.0))
        return job_id

    job_id = str(on_queue(retried))
    shown = cli("jobs", "show", job_id)
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "Timeline" in text and "enqueued" in text and "reserved" in text
    assert "cli-worker" in text and "parsing [page 2]" in text  # literal, not markup
    assert "retry" in text and "delay_ms 45000" in text and "the disk was busy" in text
    data = json.loads(cli("jobs", "show", job_id, "--json").stdout)
    assert [event["kind"] for event in data["timeline"]] == [
        "enqueued", "reserved", "progress", "retry"]
    assert data["timeline"][3]["run_at"] and data["timeline"][1]["worker"] == "cli-worker"
