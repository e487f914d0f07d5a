"""The intake (docworkers.queue.intake): a ready job with a generated id is one RPUSH, and every
guarantee holds as if enqueue.lua had stored it: it is found, listed, counted and cancelled
before any worker runs, priority and FIFO hold across both ways in, an entry a dying worker
claimed still runs exactly once, and a push sent twice stays one job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import test_sentinel as sentinel_suite
from job_waits import until, until_finished
from redis.exceptions import ResponseError
from redis_proxy import RedisProxy
from server_start import start_valkey

from docworkers.embedded import EmbeddedRedis
from docworkers.errors import (
    ConfigurationError,
    InvalidPayloadError,
    RepositoryConnectionError,
    RepositoryError,
)
from docworkers.queue import (
    Job,
    JobFilter,
    JobStatus,
    RedisJobRepository,
    RepositoryConfig,
    SyncJobProducer,
)
from docworkers.queue.intake import pack_rpush
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


async def test_an_enqueue_without_options_is_stored_as_one_with_the_defaults_given(
        repo: RedisJobRepository, producer: SyncJobProducer, clean_redis: redis.Redis,
        invariants: Any) -> None:
    """With no option, enqueue builds no JobSpec (intake.intake_entry): the entry, the hash and
    the job are those of the same call with every default spelled out, on both producers."""
    payload = {"n": [1, "é"], "s": 'q"uote\nline'}
    defaults: dict[str, Any] = {"priority": 0, "max_retries": None, "user_id": None,
                                "tags": ()}
    ids = [await repo.enqueue("t", payload), await repo.enqueue("t", payload, **defaults),
           producer.enqueue("t", payload), producer.enqueue("t", payload, **defaults),
           await repo.enqueue("t"), producer.enqueue("t", None)]
    entries = [e.partition("\n") for e in clean_redis.lrange(repo.keys.intake, 0, -1)]
    headers = [json.loads(head) for head, _, _ in entries]
    assert [h[0] for h in headers] == ids
    assert all(h[1:-1] == headers[0][1:-1] for h in headers)  # all but the id and the time
    assert [body for _, _, body in entries] == [json.dumps(payload, separators=(",", ":"))] * 4 \
        + ["{}"] * 2
    stored = [await repo.get_job(job_id) for job_id in ids]
    views = [{k: v for k, v in job.to_dict().items() if k not in ("id", *TIMES)}
             for job in stored]
    assert all(view == views[0] for view in views[:4])
    assert views[0]["priority"] == 0 and views[0]["tags"] == [] and views[0]["user_id"] is None
    assert stored[4].payload == stored[5].payload == {}
    assert invariants() == dict.fromkeys(ids, "queued")


async def test_an_enqueue_without_options_is_checked_before_anything_reaches_redis(
        repo: RedisJobRepository, producer: SyncJobProducer, clean_redis: redis.Redis) -> None:
    for enqueue in (repo.enqueue, producer.enqueue):
        with pytest.raises(ConfigurationError, match="job type is required"):
            result = enqueue(" ", {})
            if asyncio.iscoroutine(result):
                await result
        with pytest.raises(InvalidPayloadError, match="not JSON-serialisable"):
            result = enqueue("t", {"x": {1, 2}})
            if asyncio.iscoroutine(result):
                await result
    assert clean_redis.keys("*") == []


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
    """Once the lane's connection is up, only the reply of a push waits under the timeout
    (the send cannot wait, see resp_wire.RespWire.exchange): a server that holds writes still
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


# --- the asyncio lane's own protocol (resp_wire.RespWire), through a proxy --------------------


def _payloads(client: redis.Redis, key: str) -> list[Any]:
    return [json.loads(e.partition("\n")[2]) for e in client.lrange(key, 0, -1) if e]


async def test_replies_split_across_reads_and_error_replies(
        proxy: RedisProxy, clean_redis: redis.Redis) -> None:
    """A reply that comes a byte at a time is read whole (an integer and an error alike); an
    error reply raises redis-py's error (as a RepositoryError) and leaves the connection in
    use: the next push goes on the same one."""
    repo = RedisJobRepository.from_url(await proxy.start(), RepositoryConfig(queue="test"))
    try:
        await repo.enqueue("t", {"n": 1})  # connects the lane (with whole replies)
        connections = proxy.accepted
        proxy.bytewise = True
        await repo.enqueue("t", {"n": 2})
        clean_redis.delete(repo.keys.intake)
        clean_redis.set(repo.keys.intake, "not a list")
        with pytest.raises(RepositoryError, match="WRONGTYPE") as raised:
            await repo.enqueue("t", {"n": 3})
        assert isinstance(raised.value.__cause__, ResponseError)
        clean_redis.delete(repo.keys.intake)
        await repo.enqueue("t", {"n": 4})
        proxy.bytewise = False
        await repo.enqueue("t", {"n": 5})
        assert _payloads(clean_redis, repo.keys.intake) == [{"n": 4}, {"n": 5}]
        assert proxy.accepted == connections  # no push needed a new connection
    finally:
        await repo.close()


async def test_a_reply_that_does_not_come_times_out_and_is_not_sent_again(
        proxy: RedisProxy, clean_redis: redis.Redis) -> None:
    """The lane's one timer bounds each reply, also when it was armed for an earlier push
    (it fires inside the next push's time and waits on for that push's deadline): the push
    fails as a connection error, is not sent again (it reached Redis), and the next push
    goes on a new connection."""
    repo = RedisJobRepository.from_url(await proxy.start(), RepositoryConfig(queue="test"),
                                       socket_timeout=0.3)
    try:
        await repo.enqueue("t", {"n": 1})  # arms the timer for its reply
        connections = proxy.accepted
        await asyncio.sleep(0.15)
        proxy.hold()
        with pytest.raises(RepositoryConnectionError, match="no reply to the intake push"):
            await repo.enqueue("t", {"n": 2})
        proxy.release()
        await repo.enqueue("t", {"n": 3})
        assert proxy.accepted == connections + 1
        assert _payloads(clean_redis, repo.keys.intake) == [{"n": 1}, {"n": 2}, {"n": 3}]
    finally:
        await repo.close()


async def _push_held_after_one(proxy: RedisProxy, repo: RedisJobRepository,
                               clean_redis: redis.Redis) -> tuple[str, int, asyncio.Task[str]]:
    """Push ``{"n": 1}`` through the proxy, then ``{"n": 2}`` in a task whose push reaches
    Redis but whose reply the proxy holds: the first job's id, the proxy's connections after
    the first push, and the task still waiting."""
    first = await repo.enqueue("t", {"n": 1})
    connections = proxy.accepted
    proxy.hold()
    waiting = asyncio.create_task(repo.enqueue("t", {"n": 2}))
    await until(lambda: clean_redis.llen(repo.keys.intake) == 2)
    return first, connections, waiting


async def test_a_cancelled_push_drops_its_connection(
        proxy: RedisProxy, clean_redis: redis.Redis) -> None:
    """A caller cancelled while its reply is on the way gets CancelledError; the reply left
    unread goes with its connection, and the next push takes a new one."""
    repo = RedisJobRepository.from_url(await proxy.start(), RepositoryConfig(queue="test"))
    try:
        _, connections, waiting = await _push_held_after_one(proxy, repo, clean_redis)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        proxy.release()
        await repo.enqueue("t", {"n": 3})
        assert proxy.accepted == connections + 1
        assert _payloads(clean_redis, repo.keys.intake) == [{"n": 1}, {"n": 2}, {"n": 3}]
    finally:
        await repo.close()


async def test_a_push_whose_connection_breaks_before_its_reply_is_sent_again_as_one_job(
        proxy: RedisProxy, repo: RedisJobRepository, clean_redis: redis.Redis,
        invariants: Any) -> None:
    """The connection dies after the push reached Redis but before its reply did: the push is
    sent again on a new connection, and absorb keeps one job of the two entries."""
    pushing = RedisJobRepository.from_url(await proxy.start(), RepositoryConfig(queue="test"))
    try:
        first, connections, waiting = await _push_held_after_one(proxy, pushing, clean_redis)
        proxy.cut()  # the held reply is lost with the connection
        proxy.release()
        second = await waiting
        assert proxy.accepted == connections + 1
        assert _payloads(clean_redis, repo.keys.intake) == [{"n": 1}, {"n": 2}, {"n": 2}]
        third = await pushing.enqueue("t", {"n": 3})
        assert [job.id for job in (await repo.reserve("w", 10, 30)).jobs] == \
            [first, second, third]
        assert invariants() == dict.fromkeys((first, second, third), "processing")
    finally:
        await pushing.close()


async def test_pushes_go_on_after_a_server_restart(tmp_path: Path) -> None:
    """The lane's connection closes with the server; the next push, after the restart, takes a
    new one. Nothing is pushed twice."""
    server = EmbeddedRedis(base_dir=tmp_path, appendonly=True)
    url = start_valkey(server)
    repo = RedisJobRepository.from_url(url, RepositoryConfig(queue="restart"))
    try:
        first = await repo.enqueue("t", {"n": 1})
        server.stop(keep_data=True)
        start_valkey(server)  # same port, same data
        second = await repo.enqueue("t", {"n": 2})
        third = await repo.enqueue("t", {"n": 3})
        assert [job.id for job in (await repo.reserve("w", 10, 30)).jobs] == \
            [first, second, third]
    finally:
        await repo.close()
        server.stop()


def test_the_lane_runs_on_uvloop(redis_url: str, clean_redis: redis.Redis) -> None:
    """uvicorn runs the API on uvloop, whose transports are not asyncio's classes: the lane
    takes them over too (an upload through the API is an intake push; the first version of the
    wire refused uvloop's transport, and every API upload failed). Pushes, a reply that is an
    error (the connection kept), and a connection the server closed (pushed again, one job)."""
    import uvloop

    async def scenario() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test"))
        try:
            ids = [await repo.enqueue("t", {"n": n}) for n in range(3)]
            pushed = clean_redis.lrange(repo.keys.intake, 0, -1)
            clean_redis.delete(repo.keys.intake)
            clean_redis.set(repo.keys.intake, "not a list")
            with pytest.raises(RepositoryError, match="WRONGTYPE"):
                await repo.enqueue("t", {"n": -1})
            clean_redis.delete(repo.keys.intake)
            clean_redis.rpush(repo.keys.intake, *pushed)
            assert clean_redis.client_kill_filter(_type="normal", skipme=True) >= 1
            ids.append(await repo.enqueue("t", {"n": 3}))
            ids.append(await repo.enqueue("t", {"n": 4}))
            assert _payloads(clean_redis, repo.keys.intake) == [{"n": n} for n in range(5)]
            assert [job.id for job in (await repo.reserve("w", 10, 30)).jobs] == ids
        finally:
            await repo.close()

    uvloop.run(scenario())


async def test_closing_the_client_closes_the_lanes_of_every_queue(
        redis_url: str, clean_redis: redis.Redis) -> None:
    """A repository for another queue shares the client's pool; its lane's connection, taken
    over from redis-py, is closed with the pool when the client's owner closes it (redis-py
    waits for that connection's close: the wire tells redis-py's own protocol of it)."""
    repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test"))
    other = repo.for_queue("other")
    await repo.enqueue("t", {})
    await other.enqueue("t", {})
    before = len(clean_redis.client_list())
    await repo.close()  # a connection that redis-py waited for in vain would raise here
    await until(lambda: len(clean_redis.client_list()) == before - 2)


@pytest.fixture
def sentinel_nodes(tmp_path: Path) -> Iterator[sentinel_suite.SentinelSet]:
    """test_sentinel.py's master, replica and three sentinels, ready for a failover."""
    nodes = sentinel_suite.start_sentinel_set(tmp_path)
    try:
        sentinel_suite._until(lambda: sentinel_suite._ready(nodes),
                              "replica in sync and sentinels acquainted", nodes)
        yield nodes
    finally:
        sentinel_suite.stop(nodes)


async def test_the_lane_follows_a_sentinel_failover(
        sentinel_nodes: sentinel_suite.SentinelSet) -> None:
    """The lane takes over redis-py's sentinel connections too: after a failover (the
    sentinels close the old master's client connections as they demote it) the next push goes
    on a new connection, to the master the sentinels name now, and no push is lost or doubled.
    """
    nodes = sentinel_nodes
    repo = RedisJobRepository.from_url(nodes.url(), RepositoryConfig(queue="test"))
    try:
        first = await repo.enqueue("t", {"n": 1})
        with nodes.sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", sentinel_suite.MASTER)

        def demoted() -> bool:
            with nodes.master.client() as old:
                return bool(nodes.all_name(nodes.replica.port)
                            and old.info("replication")["role"] == "slave")

        sentinel_suite._until(demoted, "the old master is a replica", nodes)
        second = await repo.enqueue("t", {"n": 2})
        with nodes.replica.client() as promoted:
            stored = [json.loads(e.partition("\n")[0])[0]
                      for e in promoted.lrange(repo.keys.intake, 0, -1)]
        assert stored == [first, second]
    finally:
        await repo.close()


@pytest.mark.parametrize("entries", [["x"], ["", "a b", "é\n\"q\""], ["[" + "9" * 70_000 + "]"]])
def test_the_push_is_packed_as_redis_py_packs_it(redis_url: str, entries: list[str]) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        conn = client.connection_pool.get_connection()
        try:
            expected = b"".join(conn.pack_command("RPUSH", "dw:{q}:intake", *entries))
        finally:
            client.connection_pool.release(conn)
    finally:
        client.close()
    assert pack_rpush(b"dw:{q}:intake", entries) == expected
