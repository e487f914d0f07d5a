"""Job timelines: the events the scripts record, their bounds, and their deletion with the job."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
import redis

from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository, RepositoryConfig
from docworkers.queue.events import (
    EVENT_CAP,
    EVENT_TEXT,
    PROGRESS_ROOM,
    JobEvent,
    attempts,
    timeline,
)
from docworkers.queue.filters import JobFilter
from docworkers.queue.redis.scripts import lua_source

BYTES_PER_JOB = 8 * 1024  # the most a job's full events list may take (MEMORY USAGE)


def kinds(events: list[JobEvent]) -> list[str]:
    return [event.kind for event in events]


async def reserve_one(repo: RedisJobRepository, worker: str = "w1") -> tuple[str, int]:
    [job] = (await repo.reserve(worker, 1, lease=30)).jobs
    return job.id, job.token


def test_the_scripts_and_the_reader_share_the_bounds() -> None:
    lib = lua_source("progress")  # the script that uses all three (each carries its own)
    for name, value in (("EVENT_CAP", EVENT_CAP), ("PROGRESS_ROOM", PROGRESS_ROOM),
                        ("EVENT_TEXT", EVENT_TEXT)):
        assert re.search(rf"^local {name} = (\d+)$", lib, re.M).group(1) == str(value)  # type: ignore[union-attr]


async def test_a_job_that_fails_then_succeeds_tells_its_story(repo: RedisJobRepository,
                                                             invariants) -> None:
    job_id = await repo.enqueue("t", {"filename": "a.pdf"}, max_retries=2)
    _, token = await reserve_one(repo, "w1")
    await repo.update_progress(job_id, token, 10, "parsing", lease=30)
    await repo.update_progress(job_id, token, 20, "parsing", lease=30)  # same message: no event
    await repo.update_progress(job_id, token, 30, "chunking", lease=30)
    await repo.fail(job_id, token, Failure.retry(JobErrorInfo("flaky", "try again"), delay=0.01))
    await asyncio.sleep(0.02)
    _, token = await reserve_one(repo, "w2")
    await repo.complete(job_id, token, {"ok": True})

    job = await repo.get_job(job_id)
    events = await repo.job_events(job_id)
    assert kinds(events) == ["reserved", "progress", "progress", "retry", "reserved",
                             "completed"]
    first, parsing, _, retry, second, _ = events
    assert first.details["worker"] == "w1" and first.details["token"] == 1
    assert first.details["lease_until"] > first.at.isoformat()[:19]  # type: ignore[operator]
    assert parsing.details == {"progress": 10, "message": "parsing"}
    assert retry.details["delay_ms"] == 10 and retry.details["code"] == "flaky"
    assert retry.details["message"] == "try again" and retry.details["run_at"]
    assert second.details["worker"] == "w2" and second.details["token"] == 2
    story = timeline(job, events)
    assert story[0].kind == "enqueued" and story[0].at == job.created_at
    tries = attempts(events)
    assert [(a["worker"], a["outcome"]) for a in tries] == [("w1", "retry"), ("w2", "completed")]
    assert tries[0]["error"] == {"code": "flaky", "message": "try again"}
    assert tries[0]["last_message"] == "chunking"
    invariants()


async def test_final_failure_cancel_requeue_and_release_are_recorded(
        repo: RedisJobRepository, invariants) -> None:
    failed = await repo.enqueue("t", {})
    _, token = await reserve_one(repo)
    await repo.fail(failed, token, Failure.final(JobErrorInfo("bad_input", "not a PDF")))
    await repo.requeue(failed)
    waiting = await repo.enqueue("t", {}, delay=60)
    await repo.cancel(waiting)
    job_id, token = await reserve_one(repo)
    assert job_id == failed
    assert await repo.cancel(job_id) == "requested"
    assert await repo.release([(job_id, token)]) == 1

    assert kinds(await repo.job_events(failed)) == [
        "reserved", "failed", "requeued", "reserved", "cancel_requested", "released"]
    assert (await repo.job_events(failed))[1].details == {"code": "bad_input",
                                                          "message": "not a PDF"}
    assert (await repo.job_events(failed))[2].details == {"previous": "failed"}
    [cancelled] = await repo.job_events(waiting)
    assert cancelled.kind == "cancelled" and cancelled.details["message"] == \
        "cancelled while queued"
    invariants()


async def test_an_expired_lease_is_recorded_with_its_worker(repo: RedisJobRepository) -> None:
    job_id = await repo.enqueue("t", {}, max_retries=1)
    await repo.reserve("gone", 1, lease=0.01)
    await asyncio.sleep(0.03)
    await repo.reserve("w2", 1, lease=30)  # recovers the lease, then reserves the job again
    assert [(e.kind, e.details.get("worker")) for e in await repo.job_events(job_id)] == [
        ("reserved", "gone"), ("lease_expired", "gone"), ("reserved", "w2")]
    assert (await repo.job_events(job_id))[1].details["outcome"] == "queued"


async def test_events_stay_bounded(repo: RedisJobRepository, clean_redis: redis.Redis) -> None:
    job_id = await repo.enqueue("t", {}, max_retries=1000)
    _, token = await reserve_one(repo)
    for i in range(100):  # progress alone fills the list up to PROGRESS_ROOM, then replaces
        await repo.update_progress(job_id, token, i, f"step {i} " + "x" * 500, lease=30)
    events = await repo.job_events(job_id)
    assert len(events) == PROGRESS_ROOM and events[-1].details["progress"] == 99
    assert events[-1].details["message"] == ("step 99 " + "x" * 500)[:EVENT_TEXT]
    for _ in range(40):  # lifecycle events still push, and the oldest go
        await repo.fail(job_id, token, Failure.retry(JobErrorInfo("e", "m" * 1000)))
        _, token = await reserve_one(repo)
        await repo.update_progress(job_id, token, 1, "y" * 1000, lease=30)
    events = await repo.job_events(job_id)
    assert len(events) == EVENT_CAP
    assert kinds(events)[-3:] == ["retry", "reserved", "progress"]
    assert all(len(str(e.details.get("message", ""))) <= EVENT_TEXT for e in events)
    used = clean_redis.memory_usage(repo.keys.events(job_id))
    print(f"events of one job at the cap: {used} bytes")
    assert used <= BYTES_PER_JOB


@pytest.fixture
async def small(redis_url: str, clean_redis: redis.Redis
                ) -> AsyncIterator[RedisJobRepository]:
    """A queue that keeps one dead letter and forgets finished jobs at once."""
    repository = RedisJobRepository.from_url(redis_url, RepositoryConfig(
        queue="test", dead_letter_cap=1, failed_retention=0.001, completed_retention=0.001))
    yield repository
    await repository.close()


async def test_every_deletion_takes_the_events(small: RedisJobRepository,
                                               clean_redis: redis.Redis, invariants) -> None:
    async def run(outcome: str) -> str:
        job_id = await small.enqueue("t", {}, max_retries=0)
        _, token = await reserve_one(small)
        if outcome == "complete":
            await small.complete(job_id, token)
        else:
            kind = Failure.retry if outcome == "dead" else Failure.final
            await small.fail(job_id, token, kind(JobErrorInfo("e", "m")))
        await asyncio.sleep(0.005)
        return job_id

    dead = [await run("dead") for _ in range(3)]  # the cap keeps the last one
    finished = [await run("complete"), await run("fail"), await run("complete")]
    deleted = await small.enqueue("t", {})
    await small.cancel(deleted)
    assert await small.delete_job(deleted)
    await small.cleanup(older_than=0.0, include_dead=True)
    invariants()
    for job_id in [*dead, *finished, deleted]:
        assert not clean_redis.exists(small.keys.events(job_id)), job_id
        assert not clean_redis.exists(small.keys.job(job_id)), job_id


async def test_listing_filters_by_payload_text_and_queue_and_counts(
        repo: RedisJobRepository) -> None:
    for i in range(30):
        await repo.enqueue("t", {"filename": f"Report-{i}.pdf", "collection": f"c{i % 3}"})
    page = await repo.page_jobs(JobFilter(limit=10, offset=10))
    assert len(page.jobs) == 10 and page.total == 30
    found = await repo.page_jobs(JobFilter.of(payload={"collection": "c1"}, text="report-1",
                                              limit=5))
    assert sorted(j.payload["filename"] for j in found.jobs) == [  # type: ignore[type-var]
        "Report-1.pdf", "Report-10.pdf", "Report-13.pdf", "Report-16.pdf", "Report-19.pdf"]
    assert found.total == 5
    assert (await repo.page_jobs(JobFilter.of(text="REPORT", limit=4, offset=28))).total == 30
    assert len((await repo.page_jobs(JobFilter.of(text="REPORT", limit=4, offset=28))).jobs) == 2
    assert await repo.page_jobs(JobFilter.of(queues=["other"])) == \
        type(page)([], 0)
