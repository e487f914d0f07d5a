"""The throughput work keeps the guarantees: what the fast paths return equals the stored
truth, and the round trips that are now pipelined or batched lose nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from docworkers.errors import RepositoryConnectionError
from docworkers.queue import (
    Failure,
    Job,
    JobErrorInfo,
    JobSpec,
    JobStatus,
    RedisJobRepository,
    RepositoryConfig,
    Reservation,
)
from docworkers.queue.coalescer import Coalescer
from docworkers.queue.redis.clients import is_cluster
from docworkers.queue.waiter import READ_SIZE
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


async def test_reserved_job_equals_the_stored_job(repo: RedisJobRepository) -> None:
    """reserve.lua returns chosen fields, patched after writing; Job.from_hash reads the hash."""
    await repo.enqueue("doc", {"name": "a.pdf", "n": [1, 2]}, priority=7, max_retries=5,
                       user_id="u1", tags=["x", "y"], job_id="j-1")
    first = (await repo.reserve("w1", 1, 30)).jobs[0]
    assert first == await repo.get_job("j-1")
    assert first.status == JobStatus.PROCESSING and first.token == 1
    assert first.payload == {"name": "a.pdf", "n": [1, 2]} and first.tags == ["x", "y"]
    await repo.fail("j-1", first.token, Failure.retry(JobErrorInfo("boom", "it broke")))
    second = (await repo.reserve("w2", 1, 30)).jobs[0]  # a retry: error and run_at are set
    assert second == await repo.get_job("j-1")
    assert second.retry_count == 1 and second.error is not None and second.worker_id == "w2"


async def test_bulk_enqueue_keeps_arrival_order_across_batches(repo: RedisJobRepository,
                                                               invariants) -> None:
    specs = [JobSpec("t", {"i": i}, priority=1 if i % 400 == 0 else 0) for i in range(1100)]
    await repo.enqueue_many(specs)
    order: list[int] = []
    while jobs := (await repo.reserve("w", 300, 30)).jobs:
        order += [j.payload["i"] for j in jobs]
    high = [i for i in range(1100) if i % 400 == 0]
    assert order == high + [i for i in range(1100) if i % 400 != 0]
    invariants()


async def test_duplicate_ids_in_one_bulk_enqueue_create_one_job(repo: RedisJobRepository,
                                                                invariants) -> None:
    ids = await repo.enqueue_many([JobSpec("t", {"v": 1}, job_id="same"),
                                   JobSpec("t", {"v": 2}, job_id="same")])
    assert ids == ["same", "same"]
    jobs = (await repo.reserve("w", 10, 30)).jobs
    assert [(j.id, j.payload) for j in jobs] == [("same", {"v": 1})]
    invariants()


async def test_lost_script_cache_strands_no_reservation(repo: RedisJobRepository,
                                                        clean_redis: redis.Redis,
                                                        invariants) -> None:
    """complete_and_reserve pipelines two scripts; if only one is missing from the server's
    cache, the other has run and its reply must be used, not sent again."""
    await repo.enqueue_many([JobSpec("t", {"i": i}) for i in range(8)])
    a = (await repo.reserve("w", 2, 30)).jobs
    _, b = await repo.complete_and_reserve([(j.id, j.token, None) for j in a], "w", 2, 30)
    clean_redis.script_flush()
    await repo.reserve("w", 0, 30)  # loads reserve.lua again, but not complete.lua
    oks, c = await repo.complete_and_reserve([(j.id, j.token, None) for j in b.jobs], "w", 2, 30)
    assert oks == [True, True] and len(c.jobs) == 2
    assert set(clean_redis.zrange(repo.keys.active, 0, -1)) == {j.id for j in c.jobs}
    assert clean_redis.zcard(repo.keys.queued) == 2
    invariants()


class GatedRepository(RedisJobRepository):
    """Holds back the reply of the first reservation that got jobs until ``gate`` opens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holding = asyncio.Event()
        self.gate = asyncio.Event()

    async def complete_and_reserve(self, *args: Any, **kwargs: Any
                                   ) -> tuple[list[bool], Reservation]:
        reply = await super().complete_and_reserve(*args, **kwargs)
        if reply[1].jobs and not self.gate.is_set():
            self.holding.set()
            await self.gate.wait()
        return reply


async def test_stop_during_a_reservation_hands_its_jobs_back(repo: RedisJobRepository,
                                                            invariants) -> None:
    """stop() must not cancel a reservation in flight (its jobs would stay leased until the
    lease ran out, and count an attempt): the jobs go back to the queue, never run."""
    ran: list[str] = []

    async def handler(job: Job, ctx: JobContext) -> None:
        ran.append(job.id)

    ids = await repo.enqueue_many([JobSpec("t", {"i": i}) for i in range(3)])
    gated = GatedRepository(repo.client, repo.config)
    worker = FunctionWorker(WorkerConfig(worker_name="w", concurrency=3, poll_interval=60),
                            job_repo=gated, handlers={"t": handler})
    await worker.start()
    await asyncio.wait_for(gated.holding.wait(), 10)
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.1)  # stop() has begun while the reply is held back
    gated.gate.set()
    await asyncio.wait_for(stopping, 20)
    assert ran == []
    jobs = await repo.get_jobs(ids)
    assert [(j.status, j.retry_count) for j in jobs] == [(JobStatus.QUEUED, 0)] * 3
    invariants()


async def test_stopping_an_idle_worker_leaves_nothing_leased(repo: RedisJobRepository,
                                                              clean_redis: redis.Redis) -> None:
    """An idle worker is blocked in a wait that also reserves; stop() interrupts it."""

    async def handler(job: Job, ctx: JobContext) -> None:
        return None

    async with FunctionWorker(WorkerConfig(worker_name="w", poll_interval=60), job_repo=repo,
                              handlers={"t": handler}) as worker:
        done = await repo.enqueue("t", {})
        while (await repo.get_job(done)).status != JobStatus.COMPLETED:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # blocked again, waiting for work
    assert not worker.is_running()
    assert clean_redis.zcard(repo.keys.active) == 0
    later = await repo.enqueue("t", {})
    assert (await repo.get_job(later)).status == JobStatus.QUEUED


async def test_concurrent_enqueues_share_script_calls(repo: RedisJobRepository,
                                                      clean_redis: redis.Redis,
                                                      invariants) -> None:
    def evalsha_calls() -> int:
        stats = clean_redis.info("commandstats").get("cmdstat_evalsha", {})
        return int(stats.get("calls", 0))

    await repo.enqueue("t", {"i": -1})  # loads the script
    before = evalsha_calls()
    ids = await asyncio.gather(*(repo.enqueue("t", {"i": i}) for i in range(200)))
    assert evalsha_calls() - before < 20  # coalesced, not one call per job
    assert len(set(ids)) == 200
    order: list[int] = []
    while jobs := (await repo.reserve("w", 100, 30)).jobs:
        order += [j.payload["i"] for j in jobs]
    assert order == list(range(-1, 200))  # arrival order kept
    invariants()


async def test_coalescer_batches_while_busy_and_reports_errors_per_batch() -> None:
    sent: list[list[int]] = []
    gate = asyncio.Event()

    async def send(items: list[int]) -> None:
        sent.append(items)
        if items == [0]:
            await gate.wait()
        if 13 in items:
            raise RuntimeError("batch with 13 failed")

    coalescer = Coalescer(send, limit=3)
    first = asyncio.create_task(coalescer.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(coalescer.submit(i)) for i in (11, 12, 13, 14)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert sent == [[0], [11, 12, 13], [14]]
    assert [type(r).__name__ for r in results] == ["NoneType", "RuntimeError", "RuntimeError",
                                                   "RuntimeError", "NoneType"]
    await coalescer.submit(15)  # idle again: sent at once, alone
    assert sent[-1] == [15]


async def test_a_wait_the_server_does_not_answer_times_out_and_the_waiter_recovers(
        redis_url: str, clean_redis: redis.Redis, invariants_of: Any) -> None:
    """The waiter's connection has no per-operation timeout of its own (waiter.py): one bound,
    socket_timeout plus the BLMOVE's block, covers each wait-and-reserve. A server that holds
    the wait makes it fail as a connection error instead of hanging; the next wait reconnects
    and reserves, and the connection goes back to the pool with its timeout."""
    repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test"),
                                       socket_timeout=0.2)
    waiter = repo.waiter()
    try:
        await waiter.connect()
        job_id = await repo.enqueue("t", {})
        # On a cluster (test_cluster_suites.py) every primary pauses: the waiter's is one.
        nodes = {"target_nodes": RedisCluster.PRIMARIES} if is_cluster(clean_redis) else {}
        clean_redis.execute_command("CLIENT", "PAUSE", 1500, "WRITE", **nodes)
        try:
            with pytest.raises(RepositoryConnectionError):
                await waiter.wait_and_reserve(0.05, "w", 1, 30)
        finally:
            clean_redis.execute_command("CLIENT", "UNPAUSE", **nodes)
        # The held wait may still have run when the pause ended (its reply lost: the job then
        # sits leased until its lease runs out, as documented); a new job shows the recovery.
        later = await repo.enqueue("t", {})
        reserved = [job.id for job in (await waiter.wait_and_reserve(0.05, "w", 2, 30)).jobs]
        assert reserved in ([later], [job_id, later])
        assert invariants_of(clean_redis, repo) == {job_id: "processing", later: "processing"}
        await waiter.close()
        if not nodes:  # on a cluster the waiter's connection is its own, in no pool
            pool: Any = repo.client.connection_pool
            assert {conn.socket_timeout for conn in pool._available_connections} == {0.2}
    finally:
        await waiter.close()
        await repo.close()


def _pops(client: redis.Redis) -> int:
    """How many ZPOPMIN and HMGET the server has run (the queue path of a reservation)."""
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
               for name in ("zpopmin", "hmget"))


async def test_a_lone_intake_job_is_leased_as_the_queue_would_lease_it(
        repo: RedisJobRepository, clean_redis: redis.Redis, invariants) -> None:
    """An idle worker's pickup: reserve.lua absorbs one new entry and, first in line, writes it
    leased at once instead of queuing and popping it. The job, its sets and its events are
    the same as those of a job that went through the queue."""
    options: dict[str, Any] = {"priority": 3, "max_retries": 2, "user_id": "u", "tags": ["x"]}
    first = await repo.enqueue("t", {"i": 0}, **options)
    await repo.enqueue("t", {"i": 1}, **options)  # two entries: both are queued, then popped
    queued_way = (await repo.reserve("w1", 1, 30)).jobs[0]
    assert queued_way.id == first
    assert len((await repo.reserve("w1", 1, 30)).jobs) == 1  # the queue is empty again
    lone = await repo.enqueue("t", {"i": 2}, **options)
    before = _pops(clean_redis)
    reservation = await repo.reserve("w1", 5, 30)
    if not is_cluster(repo.client):  # commandstats of one server
        assert _pops(clean_redis) == before  # nothing popped from the queue
    [job] = reservation.jobs
    assert job.id == lone and job.token == 1 and job.payload == {"i": 2}
    assert job == await repo.get_job(lone)
    stored = clean_redis.hgetall(repo.keys.job(lone))
    reference = clean_redis.hgetall(repo.keys.job(first))
    assert stored.keys() == reference.keys()
    differ = {"id", "payload", "created_at", "started_at", "updated_at"}
    assert {k: v for k, v in stored.items() if k not in differ} == \
        {k: v for k, v in reference.items() if k not in differ}
    assert stored["started_at"] == stored["updated_at"]
    assert clean_redis.zscore(repo.keys.active, lone) is not None
    assert clean_redis.zscore(repo.keys.all_jobs, lone) == float(stored["created_at"])
    assert clean_redis.zcard(repo.keys.queued) == 0
    lone_events = [e.kind for e in await repo.job_events(lone)]
    assert lone_events == [e.kind for e in await repo.job_events(first)] == ["reserved"]
    invariants()
    assert await repo.complete_many([(lone, 1, None)]) == [True]
    invariants()


async def test_a_lone_intake_job_waits_its_turn(repo: RedisJobRepository,
                                                clean_redis: redis.Redis, invariants) -> None:
    """The lone entry is leased straight away only when it is first in line: priority and
    FIFO across the queue, a due delayed job promoted in the same call, a paused queue, a
    worker's urgent-only capacity and a restricted view all see it as a queued job."""
    async def reserved(max_jobs: int = 1, **options: Any) -> list[str]:
        return [j.id for j in (await repo.reserve("w", max_jobs, 30, **options)).jobs]

    # A queued job of a higher priority goes first; one of the same priority that came first too.
    high = await repo.enqueue("t", {}, priority=5, job_id="high")  # enqueue.lua: queued
    low = await repo.enqueue("t", {}, priority=0)
    assert await reserved() == [high]
    assert await reserved() == [low]
    same = await repo.enqueue("t", {}, job_id="same")
    later = await repo.enqueue("t", {})
    assert await reserved() == [same]
    assert await reserved() == [later]
    # A lone entry of a higher priority goes before the queued jobs, in one batch with them.
    waiting = await repo.enqueue("t", {}, job_id="waiting")
    urgent = await repo.enqueue("t", {}, priority=9)
    assert await reserved(5) == [urgent, waiting]
    # A delayed job that falls due is promoted in the same call: its priority counts.
    due = await repo.enqueue("t", {}, priority=5, delay=0.001)
    await asyncio.sleep(0.05)  # due by now
    plain = await repo.enqueue("t", {})
    assert await reserved() == [due]
    assert await reserved() == [plain]
    # One of the same priority promoted in the call that absorbs the entry came later: the
    # entry arrived first (its arrival number is taken before the promotion's).
    later_due = await repo.enqueue("t", {}, delay=0.001)
    await asyncio.sleep(0.05)
    first = await repo.enqueue("t", {})
    assert await reserved() == [first]
    assert await reserved() == [later_due]
    # The same when the entry is queued (a job of a higher priority goes first).
    top = await repo.enqueue("t", {}, priority=5, job_id="top")
    promoted = await repo.enqueue("t", {}, delay=0.001)
    await asyncio.sleep(0.05)
    entry = await repo.enqueue("t", {})
    assert await reserved(3) == [top, entry, promoted]
    invariants()
    # Urgent-only capacity does not take it; it stays queued for the next reservation.
    normal = await repo.enqueue("t", {}, priority=0)
    assert await reserved(min_priority=1) == []
    assert clean_redis.zscore(repo.keys.queued, normal) is not None
    invariants()
    assert await reserved() == [normal]
    # A paused queue takes nothing: the entry is queued, and runs after the resume.
    await repo.pause()
    paused = await repo.enqueue("t", {})
    assert await reserved() == []
    assert clean_redis.zscore(repo.keys.queued, paused) is not None
    invariants()
    await repo.resume()
    assert await reserved() == [paused]
    # A restricted view takes its own job, from the queue.
    own = await repo.enqueue("t", {})
    view = repo.restricted_to([own])
    assert [j.id for j in (await view.reserve("w", 1, 30)).jobs] == [own]
    other = await repo.enqueue("t", {})
    assert (await view.reserve("w", 1, 30)).jobs == []
    assert clean_redis.zscore(repo.keys.queued, other) is not None
    invariants()
    assert await reserved() == [other]
    invariants()


async def test_a_waiters_replies_larger_than_one_read_arrive_whole(
        repo: RedisJobRepository, clean_redis: redis.Redis, invariants) -> None:
    """The waiter's connection reads at most READ_SIZE bytes at a time (asyncio's default
    256 KiB buffer costs a pickup an allocation per read), on every connection it gets: a
    reservation of several times that size still arrives whole, also after a reconnect."""
    def read_size() -> int:
        conn: Any = waiter._conn  # type: ignore[attr-defined]
        return int(conn._writer.transport.max_size)

    blob = "x" * (READ_SIZE // 2)
    waiter = repo.waiter()
    try:
        await waiter.connect()
        assert read_size() == READ_SIZE
        for round_ in range(2):
            ids = await repo.enqueue_many([JobSpec("t", {"blob": blob, "i": i}) for i in range(8)])
            jobs = (await waiter.wait_and_reserve(0.05, "w", 8, 30)).jobs
            assert [j.id for j in jobs] == ids
            assert all(j.payload == {"blob": blob, "i": i} for i, j in enumerate(jobs))
            assert read_size() == READ_SIZE
            invariants()
            if round_ == 0 and not is_cluster(clean_redis):  # the next wait reconnects
                clean_redis.client_kill_filter(_id=waiter._client_id)  # type: ignore[attr-defined]
                with pytest.raises(RepositoryConnectionError):
                    await waiter.wait_and_reserve(0.05, "w", 1, 30)
    finally:
        await waiter.close()
