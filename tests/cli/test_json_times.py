"""The command line's JSON writes times as ISO 8601 UTC, like jobs' (issue 13): documents
(``documents list/show --json``) and the live workers of ``stats --json``."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from typer.testing import Result

from docworkers.ingest.document_repository import (
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
)
from docworkers.queue import Job, RedisJobRepository, RepositoryConfig
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


def utc(value: Any) -> datetime:
    """The parsed time; it must be ISO 8601 with a zero UTC offset."""
    assert isinstance(value, str), value
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() == timedelta(0), value
    return moment


def register(env: dict[str, str]) -> DocumentRecord:
    async def main() -> DocumentRecord:
        client = aioredis.Redis.from_url(env["DOCWORKERS_REDIS_URL"], decode_responses=True)
        try:
            return await DocumentRepository(client).register(DocumentRecord(
                document_id="e" * 32, collection="notes", filename="a.md",
                status=DocumentStatus.COMPLETED))
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_documents_json_has_iso_times(cli_env: dict[str, str],
                                      cli: Callable[..., Result]) -> None:
    record = register(cli_env)
    (listed,) = json.loads(cli("documents", "list", "--json").stdout)
    shown = json.loads(cli("documents", "show", "e" * 32, "--json").stdout)
    assert listed == shown
    assert utc(shown["created_at"]).timestamp() == pytest.approx(record.created_at, abs=1e-6)
    assert utc(shown["updated_at"]).timestamp() == pytest.approx(record.updated_at, abs=1e-6)


async def ok(job: Job, ctx: JobContext) -> str:
    return "ok"


def test_stats_json_shows_a_live_workers_times_in_iso(cli_env: dict[str, str],
                                                      cli: Callable[..., Result]) -> None:
    """A real worker runs on its own event loop in a thread while the command reads Redis."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    repo = RedisJobRepository.from_url(cli_env["DOCWORKERS_REDIS_URL"],
                                       RepositoryConfig(queue=cli_env["DOCWORKERS_QUEUE"]))
    worker = FunctionWorker(WorkerConfig(worker_name="cli-w", poll_interval=60.0),
                            job_repo=repo, handlers={"t": ok})

    def run(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    try:
        run(worker.start())
        job_id = run(repo.enqueue("t", {}))

        async def counted() -> None:  # the worker's record shows the job (it publishes soon)
            while not any(w["jobs_processed"] for w in await repo.list_workers()):
                await asyncio.sleep(0.02)

        run(asyncio.wait_for(counted(), 30))
        data = json.loads(cli("stats", "--json").stdout)
        job = json.loads(cli("jobs", "show", job_id, "--json").stdout)
    finally:
        run(worker.stop())
        run(repo.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    (published,) = data["workers"]
    started, updated = utc(published["started_at"]), utc(published["updated_at"])
    assert started <= utc(published["last_job_time"]) <= updated
    assert utc(job["completed_at"]) <= utc(published["last_job_time"])  # jobs: the same format
