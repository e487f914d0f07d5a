"""``docworkers ingest`` on a shared queue waits only for the jobs it queued: a running worker
does them, or a local worker that takes only them; other clients' jobs are never touched."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from typer.testing import Result

from docworkers.ingest.jobs.kinds import UPLOAD_JOB_TYPE
from docworkers.queue import Job, JobSpec, JobStatus, RedisJobRepository

T = TypeVar("T")
OnQueue = Callable[[Callable[[RedisJobRepository], Awaitable[T]]], T]
SHORT_TEXT = "text/fake-text.txt"


def _enqueue_foreign(on_queue: OnQueue[list[str]], tmp_path: Path) -> list[str]:
    """Three upload jobs of another client (whose files are not on this machine)."""
    specs = [JobSpec(UPLOAD_JOB_TYPE, {"filename": f"theirs-{n}.txt",
                                       "file_path": str(tmp_path / "elsewhere" / f"{n}.txt"),
                                       "collection": "theirs"}, tags=("other-client",))
             for n in range(3)]
    return on_queue(lambda repo: repo.enqueue_many(specs))


def _all_jobs(on_queue: OnQueue[list[Job]]) -> list[Job]:
    return on_queue(lambda repo: repo.list_jobs())


def _assert_untouched(jobs: list[Job], foreign: list[str]) -> None:
    theirs = [job for job in jobs if job.id in foreign]
    assert len(theirs) == 3
    for job in theirs:
        assert job.status == JobStatus.QUEUED and job.retry_count == 0, job
        assert job.worker_id is None and job.token == 0 and job.error is None, job


def test_without_a_worker_ingest_processes_only_its_own_jobs(
        cli_env: dict[str, str], cli: Callable[..., Result], on_queue: OnQueue[Any],
        corpus: Path, tmp_path: Path) -> None:
    foreign = _enqueue_foreign(on_queue, tmp_path)
    result = cli("ingest", str(corpus / SHORT_TEXT), "--collection", "mine")
    assert result.exit_code == 0, result.output
    assert "processing here (no worker is running)" in result.stderr
    assert "1 ingested" in result.stdout
    jobs = _all_jobs(on_queue)
    _assert_untouched(jobs, foreign)
    (own,) = [job for job in jobs if job.id not in foreign]
    assert own.status == JobStatus.COMPLETED and own.retry_count == 0
    assert own.worker_id is not None and own.worker_id.startswith("cli-")


def test_with_a_running_worker_ingest_leaves_its_jobs_to_it(
        background: Callable[..., subprocess.Popen[bytes]], cli: Callable[..., Result],
        on_queue: OnQueue[Any], corpus: Path, tmp_path: Path) -> None:
    worker = background("worker", "worker", "--type", UPLOAD_JOB_TYPE, "--concurrency", "1")
    deadline = time.monotonic() + 90
    while not (workers := on_queue(lambda repo: repo.list_workers())):
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        assert time.monotonic() < deadline, "the worker did not register in 90 s"
        time.sleep(0.2)
    (live,) = workers
    name = live["worker_name"]
    result = cli("ingest", str(corpus / SHORT_TEXT))
    assert result.exit_code == 0, result.output
    assert f"a worker is running ({name}): waiting for it" in result.stderr
    assert "processing here" not in result.stderr
    (own,) = _all_jobs(on_queue)
    assert own.status == JobStatus.COMPLETED
    assert own.worker_id is not None and own.worker_id.startswith(f"{name}:")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=40) == 0, (tmp_path / "worker.log").read_text()


def test_when_the_running_worker_goes_away_ingest_processes_its_jobs_here(
        cli_env: dict[str, str], cli: Callable[..., Result], on_queue: OnQueue[Any],
        corpus: Path, tmp_path: Path) -> None:
    foreign = _enqueue_foreign(on_queue, tmp_path)

    async def publish(repo: RedisJobRepository) -> None:
        # A worker's last heartbeat (it then died): its stats live 6 s more, then expire.
        await repo.heartbeat("ghost", {"worker_name": "ghost", "is_running": True}, ttl=6,
                             lease=30, jobs=[])

    on_queue(publish)
    result = cli("ingest", str(corpus / SHORT_TEXT))
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "a worker is running (ghost): waiting for it" in err
    assert "the worker ghost went away; processing here (no worker is running)" in err
    jobs = _all_jobs(on_queue)
    _assert_untouched(jobs, foreign)
    (own,) = [job for job in jobs if job.id not in foreign]
    assert own.status == JobStatus.COMPLETED
    assert own.worker_id is not None and own.worker_id.startswith("cli-")


def test_a_restricted_worker_of_another_ingest_is_not_a_worker_to_wait_for(
        cli_env: dict[str, str], cli: Callable[..., Result], on_queue: OnQueue[Any],
        corpus: Path) -> None:
    async def publish(repo: RedisJobRepository) -> None:
        # What another `docworkers ingest`'s local worker publishes: it takes only its jobs.
        await repo.restricted_to([]).heartbeat(
            "cli-other", {"worker_name": "cli-other", "is_running": True}, ttl=60, lease=30,
            jobs=[])

    on_queue(publish)
    result = cli("ingest", str(corpus / SHORT_TEXT))
    assert result.exit_code == 0, result.output
    assert "processing here (no worker is running)" in result.stderr
    assert "waiting for it" not in result.stderr
