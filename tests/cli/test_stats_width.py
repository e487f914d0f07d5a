"""``docworkers stats`` in 80 columns: busy workers with long names, breakers and an autoscaling
supervisor, published to a real Redis the way workers publish them (heartbeats), and read back.
No line may be wider than the terminal and every count of ``--json`` must appear whole."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from typer.testing import Result

from docworkers.ingest.jobs.kinds import UPLOAD_JOB_TYPE, queue_for
from docworkers.queue import RedisJobRepository
from docworkers.workers.stats import WorkerStats

T = TypeVar("T")
OnQueue = Callable[[Callable[[RedisJobRepository], Awaitable[T]]], T]

HOST = "a-rather-long-hostname.cluster.example.internal"
JOB_TYPES = ("document_upload", "document_delete", "vector_reindex", "metadata_extract")


def worker_stats(number: int, job_type: str) -> dict[str, Any]:
    """A busy worker of ``job_type`` with large, distinct counts."""
    processed = 1_234_567 + number
    return WorkerStats(
        worker_name=f"worker-hostname-{12345 + number}-{job_type}", jobs_processed=processed,
        jobs_succeeded=processed - 98_765 - number, jobs_failed=98_765 + number,
        average_process_time=12.5, last_job_time=None, uptime=987_654.0, is_running=True,
        in_flight=12 + number, concurrency=64, queue=job_type, pid=4_194_301 + number,
        host=HOST, min_concurrency=2 * number, max_concurrency=64 if number else 0,
        scaling="backlog" if number else "fixed",
        breakers={"chroma": "half_open", "embedding": "closed"},
        outcomes={"completed": processed - 98_765 - number, "retrying": 50_000 + number,
                  "failed": 40_000, "dead": 8_765, "cancelled": 0},
        limited={"breaker:chroma": 31_415 + number, "rate:embedding": 27_182 + number},
    ).to_dict()


SUPERVISOR = {"name": f"supervisor-{HOST}-4194300", "processes": 7, "retiring": 2,
              "min_processes": 1, "max_processes": 16, "queue_depth": 7_654_321,
              "reason": "backlog above 20 jobs per process", "started": 4242, "retired": 4141}


# Integers of the JSON view the table shows otherwise: a process id is a label (checked whole
# below), a worker's successes, attempts and failed attempts are its outcomes (shown).
NOT_COUNTS = {"pid", "jobs_succeeded", "jobs_processed", "jobs_failed"}


def counts(data: Any) -> Iterator[int]:
    """Every integer in the JSON view, except NOT_COUNTS."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in NOT_COUNTS:
                yield from counts(value)
    elif isinstance(data, list):
        for value in data:
            yield from counts(value)
    elif isinstance(data, int) and not isinstance(data, bool):
        yield data


def test_stats_fits_80_columns_without_cutting_a_number(
        cli_env: dict[str, str], cli: Callable[..., Result], on_queue: OnQueue[None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def publish(repo: RedisJobRepository) -> None:
        for _ in range(3):
            await repo.enqueue(UPLOAD_JOB_TYPE, {"filename": "a.pdf", "file_path": "/x"})
        for number, job_type in enumerate(JOB_TYPES):
            queue = repo.for_queue(queue_for(job_type, repo.queue))
            await queue.heartbeat(f"worker-hostname-{12345 + number}-{job_type}",
                                  worker_stats(number, job_type), ttl=300, lease=30, jobs=[])
        await repo.publish_supervisor(str(SUPERVISOR["name"]), SUPERVISOR, ttl=300)

    on_queue(publish)
    data = json.loads(cli("stats", "--json").stdout)
    assert len(data["workers"]) == len(JOB_TYPES) and data["supervisors"]

    monkeypatch.setenv("COLUMNS", "80")
    result = cli("stats")
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert [line for line in table.splitlines() if len(line) > 80] == [], table
    assert "…" not in table, table
    cut = [n for n in set(counts(data)) if not re.search(rf"(?<![\d.]){n}(?!\d)", table)]
    assert cut == [], table
    assert "(pid 4194301)" in table  # the process of a worker, whole
