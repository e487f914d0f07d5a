"""SyncJobProducer against a real server: the same scripts, keys and arguments as the async
repository, jobs a real worker runs, the same errors, and no event loop anywhere on its path."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import redis

from docworkers.errors import (
    ConfigurationError,
    InvalidJobIdError,
    InvalidPayloadError,
    InvalidStateError,
    JobNotFoundError,
    RepositoryConnectionError,
)
from docworkers.queue import (
    Job,
    JobSpec,
    JobStatus,
    RedisJobRepository,
    RepositoryConfig,
    SyncJobProducer,
)
from docworkers.queue.sync_producer import EnqueueOptions
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig

TIMES = {"created_at", "updated_at", "run_at", "completed_at"}  # differ between any two runs
SENTINEL = "sync-producer-test:stop"


@pytest.fixture
def producer(redis_url: str, clean_redis: redis.Redis) -> Iterator[SyncJobProducer]:
    with SyncJobProducer.from_url(redis_url, RepositoryConfig(queue="test")) as made:
        yield made


class ScriptCalls:
    """The EVALSHA commands clients send, as Redis's MONITOR reports them (a script's own
    commands are left out): what each producer really sent, compared word for word."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=30)
        self.commands: list[str] = []
        self._monitor = self._client.monitor()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> ScriptCalls:
        self._monitor.__enter__()
        self._reader.start()
        return self

    def _read(self) -> None:
        while True:
            seen = self._monitor.next_command()
            if seen["command"] == f"ECHO {SENTINEL}":
                return
            if seen["client_type"] != "lua" and seen["command"].startswith("EVALSHA "):
                self.commands.append(seen["command"])

    def __exit__(self, *exc: object) -> None:
        self._client.echo(SENTINEL)
        self._reader.join(30)
        self._monitor.__exit__()
        self._client.close()
        assert not self._reader.is_alive()


def keyspace(client: redis.Redis) -> dict[str, Any]:
    """Every key and its value, without what depends on the clock (timestamps, and the scores
    of the sets ordered by time)."""
    state: dict[str, Any] = {}
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == "hash":
            state[key] = {f: v for f, v in client.hgetall(key).items() if f not in TIMES}
        elif kind == "zset":
            timed = key.endswith((":jobs", ":scheduled", ":cancelled"))
            state[key] = client.zrange(key, 0, -1) if timed \
                else client.zrange(key, 0, -1, withscores=True)
        elif kind == "list" and ":events:" in key:  # a job's events: [ms, kind, ...]
            state[key] = [json.loads(event)[1:] for event in client.lrange(key, 0, -1)]
        elif kind == "list":
            state[key] = client.lrange(key, 0, -1)
        else:
            state[key] = client.get(key)
    return state



async def made_alike(redis_url: str, clean_redis: redis.Redis, repo: RedisJobRepository,
                     producer: SyncJobProducer, produce: Callable[[Any], Any]
                     ) -> tuple[list[str], dict[str, Any]]:
    """Run ``produce`` with the async repository, then, on an emptied server, with the sync
    producer; assert both sent the same script calls and left the same keyspace."""
    # Scripts loaded and connections open first, so that only the calls themselves are seen.
    await repo.cancel(await repo.enqueue("warm-up"))
    await repo.cancel(await repo.enqueue("warm-up", job_id="warm-up-a"))  # enqueue.lua too
    producer.cancel(producer.enqueue("warm-up"))
    producer.cancel(producer.enqueue("warm-up", job_id="warm-up-s"))
    seen = []
    for side in (repo, producer):
        clean_redis.flushdb()  # also the arrival counter: the queued scores must match too
        with ScriptCalls(redis_url) as calls:
            result = produce(side)
            if asyncio.iscoroutine(result):
                await result
        seen.append((calls.commands, keyspace(clean_redis)))
    (async_calls, async_keys), (sync_calls, sync_keys) = seen
    assert sync_calls == async_calls and sync_calls
    assert sync_keys == async_keys
    return sync_calls, sync_keys


async def test_a_job_enqueued_sync_is_stored_exactly_as_an_async_one(
        redis_url: str, clean_redis: redis.Redis, repo: RedisJobRepository,
        producer: SyncJobProducer) -> None:
    options: list[dict[str, Any]] = [
        {"job_id": "plain"},
        {"job_id": "full", "priority": 7, "max_retries": 2, "user_id": "u1",
         "tags": ["x", "y"]},
        {"job_id": "later", "delay": 30.0},
    ]
    for option in options:
        calls, keys = await made_alike(
            redis_url, clean_redis, repo, producer,
            lambda side, o=option: side.enqueue("t", {"n": [1, "é"], "s": 'q"uote'}, **o))
        assert len(calls) == 1  # one script call, one round trip
        assert keys[f"dw:{{test}}:job:{option['job_id']}"]["status"] == "queued"


async def test_enqueue_many_and_cancel_send_the_same_calls(
        redis_url: str, clean_redis: redis.Redis, repo: RedisJobRepository,
        producer: SyncJobProducer) -> None:
    specs = [JobSpec("t", {"i": i}, job_id=f"j{i}", priority=i % 3) for i in range(1100)]
    calls, keys = await made_alike(redis_url, clean_redis, repo, producer,
                                   lambda side: side.enqueue_many(specs))
    assert len(calls) == 3  # 500 jobs per script call
    assert len(keys["dw:{test}:queued"]) == 1100

    async def cancel_async(side: RedisJobRepository) -> None:
        await side.enqueue("t", {}, job_id="c")
        assert await side.cancel("c") == "cancelled"

    def cancel_sync(side: SyncJobProducer) -> None:
        side.enqueue("t", {}, job_id="c")
        assert side.cancel("c") == "cancelled"

    calls, keys = await made_alike(
        redis_url, clean_redis, repo, producer,
        lambda side: cancel_async(side) if side is repo else cancel_sync(side))
    assert len(calls) == 2 and keys["dw:{test}:job:c"]["status"] == "cancelled"


async def test_a_worker_runs_a_job_the_sync_producer_enqueued(
        repo: RedisJobRepository, producer: SyncJobProducer, invariants: Callable[[], Any]
) -> None:
    async def double(job: Job, ctx: JobContext) -> dict[str, int]:
        await ctx.progress(50, "half way")
        return {"twice": job.payload["n"] * 2}

    config = WorkerConfig(worker_name="w1", poll_interval=60.0, retry_delay=0.0)
    async with FunctionWorker(config, job_repo=repo, handlers={"double": double}):
        # From a thread, as a synchronous web app would; the worker is woken, not polling.
        job_id = await asyncio.to_thread(producer.enqueue, "double", {"n": 21}, priority=3,
                                         tags=["sync"])
        job = await wait_for(producer, job_id, JobStatus.COMPLETED)
    assert job.result == {"twice": 42} and job.progress == 100 and job.tags == ["sync"]
    assert (await repo.get_job(job_id)) == job
    invariants()


async def test_cancel_from_sync_code_reaches_a_running_handler(
        repo: RedisJobRepository, producer: SyncJobProducer, invariants: Callable[[], Any]
) -> None:
    started = asyncio.Event()

    async def long(job: Job, ctx: JobContext) -> None:
        started.set()
        for step in range(1000):
            await ctx.progress(step // 10, "working")
            await asyncio.sleep(0.01)

    job_id = producer.enqueue("t", {})
    config = WorkerConfig(worker_name="w1", poll_interval=60.0, retry_delay=0.0)
    async with FunctionWorker(config, job_repo=repo, handlers={"t": long}):
        await asyncio.wait_for(started.wait(), 10)
        assert await asyncio.to_thread(producer.cancel, job_id) == "requested"
        job = await wait_for(producer, job_id, JobStatus.CANCELLED)
    assert job.error and job.error.code == "cancelled"
    invariants()


async def wait_for(producer: SyncJobProducer, job_id: str, status: JobStatus) -> Job:
    async def poll() -> Job:
        while (job := producer.get(job_id)).status != status:
            await asyncio.sleep(0.01)
        return job

    return await asyncio.wait_for(poll(), 20)


async def test_cancel_answers_as_the_async_repository_does(
        repo: RedisJobRepository, producer: SyncJobProducer, invariants: Callable[[], Any]
) -> None:
    async def outcome(cancel: Callable[[], Any]) -> str:
        try:
            result = cancel()
            return str(await result if asyncio.iscoroutine(result) else result)
        except (JobNotFoundError, InvalidStateError, InvalidJobIdError) as exc:
            return f"{type(exc).__name__}: {exc}"

    await repo.enqueue("t", {}, job_id="running")
    reserved = (await repo.reserve("w", 1, 30)).jobs[0]
    await repo.enqueue("t", {}, job_id="done")
    done = (await repo.reserve("w", 1, 30)).jobs[0]
    await repo.complete(done.id, done.token)
    for job_id in ("queued", "delayed"):
        await repo.enqueue("t", {}, job_id=job_id, delay=60 if job_id == "delayed" else 0)
    seen = {}
    for job_id in ("missing", "bad id", "running", "done", "queued"):
        sync = await outcome(lambda j=job_id: producer.cancel(j))
        again = await outcome(lambda j=job_id: repo.cancel(j))
        seen[job_id] = sync
        if job_id == "queued":  # the sync call cancelled it: the async one comes too late
            assert again.endswith("job 'queued' is already cancelled; nothing to cancel")
        else:
            assert sync == again
    assert producer.cancel("delayed") == "cancelled"
    assert seen == {
        "missing": "JobNotFoundError: no job 'missing' in queue 'test'",
        "bad id": seen["bad id"],
        "running": "requested",
        "done": "InvalidStateError: job 'done' is already completed; nothing to cancel",
        "queued": "cancelled",
    }
    assert seen["bad id"].startswith("InvalidJobIdError: invalid job id 'bad id'")
    assert (await repo.get_job(reserved.id)).cancel_requested
    invariants()


def test_get_find_and_idempotent_enqueue(producer: SyncJobProducer) -> None:
    assert producer.enqueue("t", {"v": 1}, job_id="order-42") == "order-42"
    assert producer.enqueue("t", {"v": 2}, job_id="order-42") == "order-42"
    job = producer.get("order-42")
    assert job.payload == {"v": 1} and job.status == JobStatus.QUEUED and job.queue == "test"
    assert producer.find("nothing") is None
    with pytest.raises(JobNotFoundError, match="no job 'nothing' in queue 'test'"):
        producer.get("nothing")
    with pytest.raises(InvalidJobIdError):
        producer.find("no/such")
    assert producer.enqueue_many([]) == []


class CountingConnection(redis.Connection):
    """A real connection that counts its sends: one send is one round trip."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)


def test_find_absorbs_the_intake_in_its_own_round_trip(redis_url: str,
                                                       clean_redis: redis.Redis) -> None:
    with SyncJobProducer.from_url(redis_url, RepositoryConfig(queue="test"),
                                  connection_class=CountingConnection) as counted:
        counted.find(counted.enqueue("t", {"n": 0}))  # connects, loads absorb.lua
        job_id = counted.enqueue("t", {"n": 1})  # one push on the intake
        before = CountingConnection.sends
        assert counted.get(job_id).status == JobStatus.QUEUED
        assert CountingConnection.sends - before == 1  # absorb.lua and HGETALL together
        clean_redis.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
        late = counted.enqueue("t", {"n": 2})
        assert counted.get(late).payload == {"n": 2}  # the script alone, then the read
        assert counted.find(job_id) is not None


def test_jobs_are_checked_before_anything_reaches_redis(producer: SyncJobProducer,
                                                        clean_redis: redis.Redis) -> None:
    with pytest.raises(InvalidPayloadError, match="JSON object"):
        producer.enqueue("t", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidPayloadError, match="JSON"):
        producer.enqueue("t", {"x": object()})
    with pytest.raises(ConfigurationError, match="priority"):
        producer.enqueue("t", {}, priority=5000)
    with pytest.raises(TypeError, match="prioritty"):
        producer.enqueue("t", {}, prioritty=1)  # type: ignore[call-arg]
    with pytest.raises(InvalidJobIdError):
        producer.enqueue_many([JobSpec("t", {}), JobSpec("t", {}, job_id="x y")])
    assert clean_redis.keys("*") == []


def test_the_typed_options_are_jobspecs_fields() -> None:
    fields = {f.name for f in dataclasses.fields(JobSpec)} - {"type", "payload"}
    assert set(EnqueueOptions.__annotations__) == fields


def test_for_queue_shares_the_pool(producer: SyncJobProducer, clean_redis: redis.Redis) -> None:
    other = producer.for_queue("reports")
    assert other.client is producer.client and other.config.namespace == "dw"
    job_id = other.enqueue("t", {})
    assert other.get(job_id).queue == "reports" and producer.find(job_id) is None
    assert clean_redis.zrange("dw:{reports}:queued", 0, -1) == [job_id]
    producer.close()
    producer.close()  # idempotent (the fixture closes it once more)


def test_the_sync_path_runs_no_asyncio_code_in_a_plain_thread(redis_url: str,
                                                               clean_redis: redis.Redis) -> None:
    """A thread with no event loop: nothing of asyncio runs (no loop made, none looked up)."""
    asyncio_dir = str(Path(asyncio.__file__).parent)
    ran: list[str] = []
    outcome: list[object] = []

    def spy(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(asyncio_dir):
            ran.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    def produce() -> None:
        sys.setprofile(spy)
        try:
            with SyncJobProducer.from_url(redis_url, RepositoryConfig(queue="test")) as p:
                p.ping()
                first = p.enqueue("t", {"i": 1})
                ids = p.enqueue_many(JobSpec("t", {"i": i}) for i in range(600))
                outcome.extend([p.get(first).status, p.find(ids[-1]) is not None,
                                p.cancel(first)])
        except BaseException as exc:  # shown by the assertion below
            outcome.append(exc)
        finally:
            sys.setprofile(None)

    thread = threading.Thread(target=produce)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert outcome == [JobStatus.QUEUED, True, "cancelled"]
    assert ran == []
    assert clean_redis.zcard("dw:{test}:queued") == 600


async def test_inside_a_running_loop_it_is_plain_blocking_code(
        repo: RedisJobRepository, producer: SyncJobProducer) -> None:
    job_id = producer.enqueue("t", {"from": "a coroutine"})
    assert (await repo.get_job(job_id)).payload == {"from": "a coroutine"}
    assert producer.get(job_id).status == JobStatus.QUEUED


@pytest.mark.parametrize("call", [
    lambda p: p.enqueue("t", {}),
    lambda p: p.enqueue_many([JobSpec("t", {})] * 600),
    lambda p: p.get("x"),
    lambda p: p.cancel("x"),
    lambda p: p.ping(),
])
def test_unreachable_redis_is_one_clear_line(call: Callable[[SyncJobProducer], Any]) -> None:
    with SyncJobProducer.from_url("redis://127.0.0.1:1/0") as producer, \
            pytest.raises(RepositoryConnectionError,
                          match=r"cannot reach Redis at redis://127\.0\.0\.1:1/0.*"
                                r"DOCWORKERS_REDIS_URL") as error:
        call(producer)
    assert "\n" not in str(error.value)
