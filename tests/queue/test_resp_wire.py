"""The waiter's own protocol (resp_wire.RespWire), through a proxy in front of the test's
Redis: replies that come in pieces, error replies, NOSCRIPT, a lost connection and the
reconnect after it (a new CLIENT ID, which interrupt then uses); the early start of a
reservation's jobs (Waiter.start_with, the fetcher's). Not on Redis Cluster, where the waiter
keeps redis-py's path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis
from job_waits import until
from redis.exceptions import ResponseError
from redis_proxy import RedisProxy

from docworkers.errors import RepositoryConnectionError, RepositoryError
from docworkers.queue import Job, JobSpec, RedisJobRepository, RepositoryConfig
from docworkers.queue.resp_wire import RespWire
from docworkers.queue.waiter import Waiter
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


@pytest.fixture
async def proxied(proxy: RedisProxy) -> AsyncIterator[RedisJobRepository]:
    repo = RedisJobRepository.from_url(await proxy.start(), RepositoryConfig(queue="test"))
    yield repo
    await repo.close()


@pytest.fixture
async def waiter(proxied: RedisJobRepository) -> AsyncIterator[Waiter]:
    made = proxied.waiter()
    await made.connect()
    yield made
    await made.close()


def _wire(waiter: Waiter) -> RespWire | None:
    wire: RespWire | None = waiter._wire  # type: ignore[attr-defined]
    return wire


def _blocked_id(client: redis.Redis) -> int | None:
    """The id of the one client blocked in BLMOVE, if any."""
    blocked = [int(c["id"]) for c in client.client_list() if c.get("cmd") == "blmove"]
    return blocked[0] if len(blocked) == 1 else None


async def test_replies_in_pieces_arrive_whole(proxy: RedisProxy, proxied: RedisJobRepository,
                                              waiter: Waiter, clean_redis: redis.Redis) -> None:
    """The waiter's connection is taken over once connected; a reservation whose replies come
    a byte per read (the BLMOVE's, then the script's) is read whole, and so is an empty one,
    on the same connection."""
    wire = _wire(waiter)
    assert wire is not None
    proxy.bytewise = True
    specs = [JobSpec("t", {"i": i, "text": "é" * 3}, priority=i) for i in range(3)]
    ids = await proxied.enqueue_many(specs)
    jobs = (await waiter.wait_and_reserve(0.05, "w", 3, 30)).jobs
    assert [j.id for j in jobs] == ids[::-1]  # highest priority first
    assert [j.payload for j in jobs] == [s.payload for s in specs][::-1]
    assert all(j.token > 0 and j.worker_id == "w" for j in jobs)
    assert (await waiter.wait_and_reserve(0.01, "w", 3, 30)).jobs == []
    proxy.bytewise = False
    assert await waiter.wait(0.01) is False
    assert _wire(waiter) is wire and not wire.lost


async def test_an_error_reply_raises_and_keeps_the_connection(
        proxy: RedisProxy, proxied: RedisJobRepository, waiter: Waiter,
        clean_redis: redis.Redis) -> None:
    """An error reply (the BLMOVE's, on a key of the wrong type) raises redis-py's error as a
    RepositoryError once every reply is read; the connection stays in step and in use."""
    wire = _wire(waiter)
    clean_redis.set(proxied.keys.intake, "not a list")
    with pytest.raises(RepositoryError, match="WRONGTYPE") as raised:
        await waiter.wait_and_reserve(0.01, "w", 1, 30)
    assert isinstance(raised.value.__cause__, ResponseError)
    clean_redis.delete(proxied.keys.intake)
    job_id = await proxied.enqueue("t", {})
    assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 1, 30)).jobs] == [job_id]
    assert _wire(waiter) is wire


async def test_a_lost_script_is_loaded_and_the_reservation_made(
        proxy: RedisProxy, proxied: RedisJobRepository, waiter: Waiter,
        clean_redis: redis.Redis, invariants_of: Any) -> None:
    """NOSCRIPT (Redis lost its scripts) comes back as a reply, not an error: the reserve
    script is loaded again and the job reserved, and the wire's connection stays."""
    first = await proxied.enqueue("t", {})
    assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 1, 30)).jobs] == [first]
    wire = _wire(waiter)
    clean_redis.script_flush()
    second = await proxied.enqueue("t", {})
    assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 1, 30)).jobs] == [second]
    third = await proxied.enqueue("t", {})
    assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 1, 30)).jobs] == [third]
    assert invariants_of(clean_redis, proxied) == dict.fromkeys((first, second, third),
                                                                "processing")
    assert _wire(waiter) is wire


async def test_a_connection_lost_while_idle_is_replaced_before_the_next_wait(
        proxy: RedisProxy, proxied: RedisJobRepository, waiter: Waiter,
        clean_redis: redis.Redis) -> None:
    """The server closes the connection between waits: the next wait connects again (redis-py's
    handshake), reads the new CLIENT ID and takes the new transport over; interrupt ends a
    wait on the new connection."""
    old_id, old_wire = waiter._client_id, _wire(waiter)  # type: ignore[attr-defined]
    proxy.cut()
    await until(lambda: (wire := _wire(waiter)) is not None and wire.lost)
    job_id = await proxied.enqueue("t", {})
    assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 1, 30)).jobs] == [job_id]
    new_id = waiter._client_id  # type: ignore[attr-defined]
    assert new_id is not None and new_id != old_id
    wire = _wire(waiter)
    assert wire is not None and wire is not old_wire and not wire.lost

    waiting = asyncio.create_task(waiter.wait_and_reserve(1.0, "w", 1, 30))
    await until(lambda: _blocked_id(clean_redis) == new_id)
    await waiter.interrupt()
    assert (await waiting).jobs == []
    later = await proxied.enqueue("t", {})
    assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 1, 30)).jobs] == [later]
    assert _wire(waiter) is wire


async def test_a_connection_lost_during_a_wait_fails_it_and_the_next_reconnects(
        proxy: RedisProxy, proxied: RedisJobRepository, waiter: Waiter,
        clean_redis: redis.Redis) -> None:
    """A connection cut while the wait's replies are held fails that wait as a connection
    error (its job may sit leased until the lease runs out, as documented in waiter.py); the
    next wait goes on a new connection."""
    await _end_a_held_wait(proxy, proxied, waiter, clean_redis,
                           lambda waiting: proxy.cut(), RepositoryConnectionError)


async def test_a_cancelled_wait_drops_its_connection(
        proxy: RedisProxy, proxied: RedisJobRepository, waiter: Waiter,
        clean_redis: redis.Redis) -> None:
    """A wait cancelled while its replies are on the way gets CancelledError; the replies left
    unread go with the connection, and the next wait takes a new one."""
    await _end_a_held_wait(proxy, proxied, waiter, clean_redis,
                           lambda waiting: waiting.cancel(), asyncio.CancelledError)


async def _end_a_held_wait(proxy: RedisProxy, proxied: RedisJobRepository, waiter: Waiter,
                           clean_redis: redis.Redis,
                           end: Callable[[asyncio.Task[Any]], object],
                           error: type[BaseException]) -> None:
    """A wait whose job was leased but whose replies the proxy holds is ended by ``end``
    and raises ``error``; the next wait reserves on a new connection (a new CLIENT ID)."""
    held = await proxied.enqueue("t", {})
    old_id, old_wire = waiter._client_id, _wire(waiter)  # type: ignore[attr-defined]
    proxy.hold()
    waiting = asyncio.create_task(waiter.wait_and_reserve(0.05, "w", 1, 30))
    await until(lambda: clean_redis.zscore(proxied.keys.active, held) is not None)
    end(waiting)
    with pytest.raises(error):
        await waiting
    proxy.release()
    job_id = await proxied.enqueue("t", {})
    assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 1, 30)).jobs] == [job_id]
    assert _wire(waiter) is not old_wire
    assert waiter._client_id != old_id  # type: ignore[attr-defined]


async def test_the_connection_goes_back_to_the_pool_after_close(
        redis_url: str, clean_redis: redis.Redis) -> None:
    """Closing the waiter closes the taken-over connection (redis-py's disconnect waits for
    its own protocol, told of the close by the wire) and gives it back to the pool with its
    timeout; the pool connects it afresh for its next user."""
    repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test"),
                                       socket_timeout=0.5)
    waiter = repo.waiter()
    try:
        await waiter.connect()
        assert await waiter.wait(0.01) is False
        await waiter.close()
        pool: Any = repo.client.connection_pool
        assert {conn.socket_timeout for conn in pool._available_connections} == {0.5}
        await repo.enqueue("t", {})
        assert await repo.client.ping()
    finally:
        await waiter.close()
        await repo.close()


async def test_a_reservation_is_handed_to_the_starter_before_the_wait_returns(
        proxy: RedisProxy, proxied: RedisJobRepository, waiter: Waiter,
        clean_redis: redis.Redis) -> None:
    """start_with: the reservation goes to the starter as its reply comes in (a byte at a time
    here), before wait_and_reserve returns it, the same object; an empty one too. NOSCRIPT and
    an error reply reach no starter: the first is reserved again as before, the second
    raised."""
    handed: list[tuple[Any, bool]] = []
    returned = False

    def starter(reservation: Any) -> None:
        handed.append((reservation, returned))

    waiter.start_with(starter)
    proxy.bytewise = True
    job_id = await proxied.enqueue("t", {"n": 1})
    reservation = await waiter.wait_and_reserve(0.05, "w", 2, 30)
    returned = True
    assert [j.id for j in reservation.jobs] == [job_id]
    assert handed == [(reservation, False)]
    proxy.bytewise = False
    empty = await waiter.wait_and_reserve(0.01, "w", 2, 30)
    assert empty.jobs == [] and handed[-1][0] is empty

    handed.clear()
    clean_redis.script_flush()
    second = await proxied.enqueue("t", {"n": 2})
    assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 2, 30)).jobs] == [second]
    clean_redis.set(proxied.keys.intake, "not a list")
    with pytest.raises(RepositoryError, match="WRONGTYPE"):
        await waiter.wait_and_reserve(0.01, "w", 1, 30)
    assert handed == []


async def test_what_the_starter_raises_is_raised_by_the_wait(
        proxied: RedisJobRepository, waiter: Waiter, clean_redis: redis.Redis) -> None:
    """An exception in the starter (it runs in the transport's read callback) is raised by
    wait_and_reserve; the connection stays in use."""
    wire = _wire(waiter)

    def starter(reservation: Any) -> None:
        raise ValueError("starter failed")

    waiter.start_with(starter)
    await proxied.enqueue("t", {})
    with pytest.raises(ValueError, match="starter failed"):
        await waiter.wait_and_reserve(0.05, "w", 1, 30)
    waiter.start_with(None)
    later = await proxied.enqueue("t", {})
    assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 1, 30)).jobs] == [later]
    assert _wire(waiter) is wire


async def test_a_job_reserved_while_the_worker_stops_is_handed_back_not_started(
        proxy: RedisProxy, proxied: RedisJobRepository, repo: RedisJobRepository,
        clean_redis: redis.Redis, invariants: Any) -> None:
    """An idle worker's wait reserves a job, its reply held back; stop() begins meanwhile (the
    wait has returned on the server: nothing to interrupt). When the reply comes the job is not
    started (the fetcher's early start sees the stop) but handed back, no attempt used."""
    ran: list[str] = []

    async def handler(job: Job, ctx: JobContext) -> None:
        ran.append(job.id)

    worker = FunctionWorker(WorkerConfig(worker_name="w", poll_interval=1.0),
                            job_repo=proxied, handlers={"t": handler})
    await worker.start()
    try:
        warm = await repo.enqueue("t", {"n": 0})
        await until(lambda: ran == [warm])
        await until(lambda: _blocked_id(clean_redis) is not None)
        proxy.hold()  # every reply through the proxy: the producer's is direct
        job_id = await repo.enqueue("t", {"n": 1})
        await until(lambda: clean_redis.zscore(repo.keys.active, job_id) is not None)
        stopping = asyncio.create_task(worker.stop())
        await until(lambda: worker.fetcher._stopping)
        proxy.release()
        await stopping
    finally:
        await worker.stop()
    assert ran == [warm]
    job = await repo.get_job(job_id)
    assert job.status == "queued" and job.retry_count == 0
    assert invariants()[job_id] == "queued"


def test_the_waiter_runs_on_uvloop(redis_url: str, clean_redis: redis.Redis) -> None:
    """A worker may run on uvloop, whose transports are not asyncio's classes: the waiter
    takes them over too. A reservation handed to the starter early, an error reply (the
    connection kept) and a connection the server closed (the next wait reconnects)."""
    import uvloop

    async def scenario() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        repo = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test"))
        waiter = repo.waiter()
        try:
            await waiter.connect()
            handed: list[Any] = []
            waiter.start_with(handed.append)
            wire = _wire(waiter)
            assert wire is not None
            first = await repo.enqueue("t", {"n": 1})
            reservation = await waiter.wait_and_reserve(0.05, "w", 1, 30)
            assert [j.id for j in reservation.jobs] == [first] and handed == [reservation]
            clean_redis.set(repo.keys.intake, "not a list")
            with pytest.raises(RepositoryError, match="WRONGTYPE"):
                await waiter.wait_and_reserve(0.01, "w", 1, 30)
            clean_redis.delete(repo.keys.intake)
            assert _wire(waiter) is wire
            clean_redis.client_kill_filter(_id=waiter._client_id)  # type: ignore[attr-defined]
            await until(lambda: wire.lost)
            second = await repo.enqueue("t", {"n": 2})
            assert [j.id for j in (await waiter.wait_and_reserve(0.05, "w", 1, 30)).jobs] \
                == [second]
            assert _wire(waiter) is not wire
        finally:
            await waiter.close()
            await repo.close()

    uvloop.run(scenario())
