"""The intake (docworkers.queue.intake): a ready job with a generated id is one RPUSH, and every
guarantee holds as if enqueue.lua had stored it: it is found, listed, counted and cancelled
before any worker runs, priority and FIFO hold across both ways in, an entry a dying worker
claimed still runs exactly once, and a push sent twice stays one job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from job_waits import until_finished

from docworkers.errors import RepositoryConnectionError
from docworkers.queue import (
    Job,
    JobFilter,
    JobStatus,
    RedisJobRepository,
    RepositoryConfig,
    SyncJobProducer,
)
from docworkers.queue.intake import _ReplyDeadline
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig

TIMES = ("created_at", "updated_at")


@pytest.fixture
def producer(redis_url: str, clean_redis: redis.Redis) -> Iterator[SyncJobProducer]:
    with SyncJobProducer.from_url(redis_url, RepositoryConfig(queue="test")) as made:
        yield made


async def test_a_ready_job_with_a_generated_id_is_one_entry_in_the_intake(
        repo: RedisJobRepository, clean_redis: redis.Redis, producer: SyncJobProducer,
        invariants: Any) -> None:
    first = await repo.enqueue("t", {"n": 1})
    second = producer.enqueue("t", {"n": 2})
    # Nothing but the intake list: no hash, no set, no counter (one RPUSH each).
    assert clean_redis.keys("*") == [repo.keys.intake]
    assert clean_redis.llen(repo.keys.intake) == 2
    assert invariants() == {first: "queued", second: "queued"}


async def test_intake_jobs_are_found_listed_counted_and_cancelled_before_any_worker(
        repo: RedisJobRepository, producer: SyncJobProducer, invariants: Any) -> None:
    a = await repo.enqueue("t", {"n": 1}, priority=3, max_retries=2, user_id="u",
                           tags=["x"])
    b = producer.enqueue("t", {"n": 2})
    c = await repo.enqueue("t", {"n": 3})
    job = await repo.get_job(a)
    assert (job.status, job.priority, job.max_retries, job.user_id, job.tags, job.payload) == \
        (JobStatus.QUEUED, 3, 2, "u", ["x"], {"n": 1})
    assert producer.get(b).payload == {"n": 2}
    d = producer.enqueue("t", {"n": 4})
    assert {j.id for j in await repo.list_jobs(JobFilter())} == {a, b, c, d}
    assert (await repo.stats()).by_status["queued"] == 4
    e = await repo.enqueue("t", {"n": 5})
    assert await repo.cancel(e) == "cancelled"  # still in the intake when cancel ran
    assert producer.cancel(d) == "cancelled"
    assert (await repo.get_job(e)).status == JobStatus.CANCELLED
    f = await repo.enqueue("t", {})
    assert await repo.delete_job(f) is True and await repo.find_job(f) is None
    assert await repo.queue_depth() == 3
    assert invariants() == {a: "queued", b: "queued", c: "queued", d: "cancelled",
                            e: "cancelled"}


async def test_priority_and_fifo_hold_across_the_intake_and_enqueue_lua(
        repo: RedisJobRepository, producer: SyncJobProducer, invariants: Any) -> None:
    order = [
        await repo.enqueue("t", {}),                          # intake, priority 0
        await repo.enqueue("t", {}, job_id="s1"),             # enqueue.lua, priority 0
        producer.enqueue("t", {}, priority=5),                # intake, priority 5
        producer.enqueue("t", {}, priority=5, job_id="s2"),   # enqueue.lua, priority 5
        producer.enqueue("t", {}),                            # intake, priority 0
        await repo.enqueue("t", {}, priority=5),              # intake, priority 5
    ]
    taken = [job.id for job in (await repo.reserve("w", 10, 30)).jobs]
    assert taken == [order[2], order[3], order[5], order[0], order[1], order[4]]
    invariants()


async def test_an_entry_claimed_by_a_worker_that_died_still_runs_exactly_once(
        repo: RedisJobRepository, clean_redis: redis.Redis, invariants: Any) -> None:
    job_id = await repo.enqueue("t", {"n": 1})
    later = await repo.enqueue("t", {"n": 2})
    # A worker's wait took the first entry and the worker died before its reservation ran.
    assert clean_redis.blmove(repo.keys.intake, repo.keys.claimed, 1) is not None
    assert clean_redis.llen(repo.keys.claimed) == 1
    assert invariants() == {job_id: "queued", later: "queued"}
    runs: list[str] = []

    async def handler(job: Job, ctx: JobContext) -> None:
        runs.append(job.id)

    config = WorkerConfig(worker_name="w", poll_interval=60, concurrency=1)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}):
        for done in (job_id, later):
            assert (await until_finished(repo, done)).status == JobStatus.COMPLETED
    assert runs == [job_id, later]  # once each, the claimed (older) entry first
    assert clean_redis.llen(repo.keys.claimed) == 0
    invariants()


async def test_a_push_sent_twice_stays_one_job_even_after_it_ran(
        repo: RedisJobRepository, clean_redis: redis.Redis, invariants: Any) -> None:
    job_id = await repo.enqueue("t", {"n": 1})
    (entry,) = clean_redis.lrange(repo.keys.intake, 0, -1)
    clean_redis.rpush(repo.keys.intake, entry)  # as a producer retrying after a lost reply
    (job,) = (await repo.reserve("w", 10, 30)).jobs
    assert job.id == job_id
    await repo.complete(job.id, job.token)
    clean_redis.rpush(repo.keys.intake, entry)  # a late duplicate after the job finished
    assert (await repo.reserve("w", 10, 30)).jobs == []
    assert (await repo.get_job(job_id)).status == JobStatus.COMPLETED
    assert invariants() == {job_id: "completed"}


async def test_duplicates_are_dropped_across_absorbs_chunks(
        repo: RedisJobRepository, clean_redis: redis.Redis, invariants: Any) -> None:
    """absorb looks 1000 entries up per ZMSCORE: a duplicate in a later chunk of the same
    batch, and one of a job absorbed earlier, are dropped; the rest keep their order."""
    first = await repo.enqueue("t", {"n": -1})
    await repo.stats()  # absorbed: a job now, no longer an entry
    assert not [e for e in clean_redis.lrange(repo.keys.intake, 0, -1) if e]
    ids = await asyncio.gather(*(repo.enqueue("t", {"n": i}) for i in range(2500)))
    entries = [e for e in clean_redis.lrange(repo.keys.intake, 0, -1) if e]
    assert len(entries) == 2500
    clean_redis.rpush(repo.keys.intake, entries[1500])  # in the third chunk, a repeat
    clean_redis.rpush(repo.keys.intake, entries[0].replace(ids[0], first))  # an existing job
    assert (await repo.stats()).by_status["queued"] == 2501
    reserved = (await repo.reserve("w", 3000, 30)).jobs
    assert [j.id for j in reserved] == [first, *ids]
    invariants()


async def test_sync_and_async_intake_jobs_are_stored_alike(
        repo: RedisJobRepository, producer: SyncJobProducer, clean_redis: redis.Redis) -> None:
    options: dict[str, Any] = {"priority": -4, "max_retries": 1, "user_id": "u",
                               "tags": ["a", "é"]}
    payload = {"n": [1, "é"], "s": 'q"uote\nline'}
    ids = [await repo.enqueue("t", payload, **options), producer.enqueue("t", payload, **options)]
    entries = [e.partition("\n") for e in clean_redis.lrange(repo.keys.intake, 0, -1)]
    headers = [json.loads(head) for head, _, _ in entries]
    assert [h[0] for h in headers] == ids
    assert headers[0][1:-1] == headers[1][1:-1]  # all but the id and the time
    assert entries[0][2] == entries[1][2]  # the payload, as JSON
    stored = [await repo.get_job(job_id) for job_id in ids]
    hashes = [{f: v for f, v in clean_redis.hgetall(repo.keys.job(i)).items()
               if f not in (*TIMES, "id")} for i in ids]
    assert hashes[0] == hashes[1]
    assert stored[0].payload == stored[1].payload == payload
    assert stored[0].tags == ["a", "é"] and stored[0].priority == -4


async def test_an_idle_worker_is_woken_by_the_push_itself(
        repo: RedisJobRepository, producer: SyncJobProducer, invariants: Any) -> None:
    """poll_interval 60: only the wake-up on the intake list can start these jobs in time (the
    waiter's BLMOVE blocks at most a second per call, and reserves after each)."""
    started = asyncio.Event()

    async def handler(job: Job, ctx: JobContext) -> None:
        started.set()

    config = WorkerConfig(worker_name="w", poll_interval=60)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": handler}):
        await asyncio.sleep(0.2)  # idle: blocked on the intake
        for job_id in (producer.enqueue("t", {}), await repo.enqueue("t", {})):
            assert (await until_finished(repo, job_id)).status == JobStatus.COMPLETED
    assert started.is_set()
    invariants()


async def test_a_full_batch_leaves_one_wake_up_for_the_jobs_it_left(
        repo: RedisJobRepository, clean_redis: redis.Redis, invariants: Any) -> None:
    """Jobs absorbed by one worker's reservation that it cannot all take must wake another
    idle worker (whose wait missed their entries): one token, passed on by each full batch,
    none once nothing is ready, and none from a short batch (a worker cannot wake itself)."""
    for _ in range(5):
        await repo.enqueue("t", {})
    assert len((await repo.reserve("a", 2, 30)).jobs) == 2
    assert clean_redis.lrange(repo.keys.intake, 0, -1) == [""]
    assert len((await repo.reserve("b", 2, 30)).jobs) == 2
    assert clean_redis.lrange(repo.keys.intake, 0, -1) == [""]
    assert (await repo.reserve("c", 2, 30, min_priority=1)).jobs == []  # short: none for it
    assert len((await repo.reserve("c", 2, 30)).jobs) == 1
    assert clean_redis.exists(repo.keys.intake) == 0  # nothing ready: no token left
    invariants()


async def test_a_push_the_server_does_not_answer_times_out_once_connected(
        redis_url: str, clean_redis: redis.Redis) -> None:
    """Once the lane's connection is up, only the reply of a small push waits under the
    timeout (the send cannot wait, see IntakeLane._push): a server that holds writes still
    makes the push fail within socket_timeout, as a connection error, and it is not sent again
    (a push that may have arrived is never repeated on a timeout)."""
    repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test"),
                                       socket_timeout=0.2)
    try:
        await repo.enqueue("t", {})  # connects the lane
        clean_redis.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
        try:
            with pytest.raises(RepositoryConnectionError, match="no reply to the intake push"):
                await repo.enqueue("t", {"n": 2})
        finally:
            clean_redis.execute_command("CLIENT", "UNPAUSE")
        await repo.enqueue("t", {"n": 3})  # on a new connection
        payloads = [json.loads(e.partition("\n")[2])
                    for e in clean_redis.lrange(repo.keys.intake, 0, -1) if e]
        # the held push may still have run when the pause ended, but never twice
        assert payloads[0] == {} and payloads[-1] == {"n": 3} and len(payloads) <= 3
    finally:
        await repo.close()


async def test_producers_push_again_after_their_connection_is_killed(
        repo: RedisJobRepository, producer: SyncJobProducer, clean_redis: redis.Redis,
        invariants: Any) -> None:
    """The intake's own connections (intake.IntakeLane, SyncIntakeLane) reconnect: a push
    that meets a connection the server closed is sent again on a new one."""
    ids = [await repo.enqueue("t", {}), producer.enqueue("t", {})]
    killed = clean_redis.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 2  # at least the two lanes' connections
    ids += [await repo.enqueue("t", {}), producer.enqueue("t", {})]
    assert [job.id for job in (await repo.reserve("w", 10, 30)).jobs] == ids
    assert invariants() == dict.fromkeys(ids, "processing")


async def test_the_reply_deadline_times_out_each_reply_at_its_own_deadline() -> None:
    """IntakeLane's _ReplyDeadline keeps one timer across replies (no timer per push): a reply
    that never comes still raises TimeoutError, also when the timer was armed for an earlier
    reply, and leaves the task without a pending cancellation; a cancellation from outside
    stays a cancellation; replies that come are returned."""
    deadline = _ReplyDeadline()
    loop = asyncio.get_running_loop()

    async def answered(value: int) -> int:
        await asyncio.sleep(0)
        return value

    try:
        assert await deadline.within(answered(1), 0.05) == 1  # arms the timer
        await asyncio.sleep(0.02)  # its first firing finds this reply in flight: it re-arms

        async def unanswered() -> int:
            try:
                await deadline.within(loop.create_future(), 0.05)
            except TimeoutError:
                task = asyncio.current_task()
                assert task is not None
                await asyncio.sleep(0)  # no cancellation left pending
                return task.cancelling()
            return -1

        waiting = asyncio.create_task(unanswered())
        done, _ = await asyncio.wait([waiting], timeout=5.0)  # a broken deadline hangs
        assert waiting in done and waiting.result() == 0
        await asyncio.sleep(0.06)  # the timer fires with nothing in flight and stays unarmed
        assert await deadline.within(answered(2), 0.05) == 2  # arms it again

        async def held() -> None:
            await deadline.within(loop.create_future(), 10.0)

        waiting = asyncio.create_task(held())
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        deadline.close()
