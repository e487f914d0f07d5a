"""The producers' short busy wait for a push's reply (reply_spin.py): when it spins, when it
rests, and that the pushes it waits for land exactly as without it, on a real server, through a
server slower than the spin, on asyncio and not at all on uvloop."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
from redis_proxy import RedisProxy, proxy_in_thread

from docworkers.errors import ConfigurationError
from docworkers.queue import RedisJobRepository, RepositoryConfig, SyncJobProducer
from docworkers.queue.reply_spin import MISSES, REST, ReplySpin, loop_is_idle


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_reply_already_in_ends_the_wait_at_once(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    spin = ReplySpin(0.5)
    theirs.send(b":1\r\n")
    assert spin.wait(ours.fileno())
    assert (spin.spins, spin.hits) == (1, 1)


def test_wait_for_asks_the_connection_until_it_has_a_reply(redis_url: str,
                                                          clean_redis: redis.Redis) -> None:
    """The sync lane asks redis-py's connection (``can_read``), not its private socket: a
    reply that arrives during the spin is a hit, and read_response then takes it from
    redis-py's buffer; a connection with nothing to read is a miss after the limit."""
    client = redis.Redis.from_url(redis_url)
    conn = client.connection_pool.get_connection()
    try:
        spin = ReplySpin(0.5)
        assert not ReplySpin(0.001).wait_for(lambda: bool(conn.can_read(timeout=0)))
        conn.send_command("PING")
        assert spin.wait_for(lambda: bool(conn.can_read(timeout=0)))
        assert (spin.spins, spin.hits) == (1, 1)
        assert conn.read_response() in (b"PONG", "PONG")
    finally:
        client.connection_pool.release(conn)
        client.close()


def test_a_peer_that_closed_ends_the_wait(pair: tuple[socket.socket, socket.socket]) -> None:
    """A closed connection polls as readable: the caller's read meets the end at once."""
    ours, theirs = pair
    theirs.close()
    assert ReplySpin(0.5).wait(ours.fileno())


def test_misses_in_a_row_make_it_rest_longer_each_time_and_a_hit_resets_that(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    fd = ours.fileno()
    spin = ReplySpin(1e-4)
    assert not any(spin.wait(fd) for _ in range(MISSES))  # nothing was sent
    assert spin.spins == MISSES
    assert not any(spin.wait(fd) for _ in range(REST))  # resting: no poll at all
    assert spin.spins == MISSES
    assert not any(spin.wait(fd) for _ in range(MISSES))  # tries again, misses again
    assert spin.spins == 2 * MISSES
    assert not any(spin.wait(fd) for _ in range(2 * REST))  # rests twice as long
    assert spin.spins == 2 * MISSES
    theirs.send(b"+OK\r\n")
    assert spin.wait(fd)  # a hit: the next run of misses rests REST again
    ours.recv(16)
    assert not any(spin.wait(fd) for _ in range(MISSES + REST))
    assert spin.spins == 2 * MISSES + 1 + MISSES
    assert not spin.wait(fd) and spin.spins == 3 * MISSES + 2


def test_a_zero_limit_never_polls(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    theirs.send(b"+OK\r\n")
    spin = ReplySpin(0)
    assert not spin.wait(ours.fileno())
    assert spin.spins == 0


@pytest.mark.parametrize("value", [-1e-6, 0.002])
def test_the_limit_is_checked_by_the_config(value: float) -> None:
    with pytest.raises(ConfigurationError, match="reply_spin"):
        RepositoryConfig(reply_spin=value)


def test_sync_pushes_spin_and_land_in_order(redis_url: str, clean_redis: redis.Redis) -> None:
    with SyncJobProducer.from_url(redis_url, RepositoryConfig(queue="test")) as producer:
        ids = [producer.enqueue("t", {"n": n}) for n in range(50)]
        spin = producer._intake._spin
        assert spin.spins >= 1  # the first push spins; later ones too unless it rests
        entries = clean_redis.lrange(producer.keys.intake, 0, -1)
    assert [entry.split('"', 2)[1] for entry in entries] == ids


def test_the_sync_lane_asks_the_connection_it_pushes_on(redis_url: str,
                                                        clean_redis: redis.Redis) -> None:
    """The lane's check (``can_read`` of its connection, bound once per connection) sees a
    reply on the connection it pushes on, and after that connection is killed, on the new one:
    a check bound to nothing, or to the old connection, would miss."""
    with SyncJobProducer.from_url(redis_url, RepositoryConfig(queue="test")) as producer:
        lane = producer._intake
        for _ in range(2):
            producer.enqueue("t", {})
            conn = lane._conn
            assert not lane._reply_in()  # the push's reply was read
            conn.send_command("PING")
            assert ReplySpin(0.5).wait_for(lane._reply_in)
            assert conn.read_response() in (b"PONG", "PONG")
            assert clean_redis.client_kill_filter(_type="normal", skipme=True) >= 1
        assert clean_redis.llen(producer.keys.intake) == 2


async def test_async_pushes_spin_on_asyncio(redis_url: str, clean_redis: redis.Redis) -> None:
    assert loop_is_idle(asyncio.get_running_loop())
    async with RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="test")) as repo:
        ids = [await repo.enqueue("t", {"n": n}) for n in range(50)]
        assert repo._intake._spin.spins >= 1
        assert [job.id for job in (await repo.reserve("w", 50, 30)).jobs] == ids


def test_uvloop_is_never_spun_in(redis_url: str, clean_redis: redis.Redis) -> None:
    """uvloop does not show its ready callbacks, so a push there never holds the loop."""
    import uvloop

    async def scenario() -> None:
        assert not loop_is_idle(asyncio.get_running_loop())
        async with RedisJobRepository.from_url(redis_url,
                                               RepositoryConfig(queue="test")) as repo:
            ids = [await repo.enqueue("t", {"n": n}) for n in range(20)]
            assert repo._intake._spin.spins == 0
            assert [job.id for job in (await repo.reserve("w", 50, 30)).jobs] == ids

    uvloop.run(scenario())


def test_a_busy_loop_is_not_spun_in() -> None:
    async def scenario() -> bool:
        asyncio.get_running_loop().call_soon(lambda: None)  # another callback is ready
        return loop_is_idle(asyncio.get_running_loop())

    assert not asyncio.run(scenario())


def test_a_server_slower_than_the_spin_makes_it_rest(redis_url: str,
                                                     clean_redis: redis.Redis) -> None:
    """Every reply comes 2 ms late: each spin misses, so the producer spins MISSES times,
    rests REST pushes, spins MISSES more, rests twice as long; every push still lands once."""
    pushes = 2 * MISSES + REST + 10
    with proxy_in_thread(RedisProxy(redis_url, delay=0.002)) as url, \
            SyncJobProducer.from_url(url, RepositoryConfig(queue="test")) as producer:
        ids = [producer.enqueue("t", {"n": n}) for n in range(pushes)]
        spin = producer._intake._spin
        assert (spin.spins, spin.hits) == (2 * MISSES, 0)
        key = producer.keys.intake
    assert clean_redis.llen(key) == len(set(ids)) == pushes


def test_a_process_held_to_one_cpu_never_spins() -> None:
    """There the server can only answer once the caller stops polling: spinning only delays."""
    ours, theirs = socket.socketpair()
    theirs.send(b"+OK\r\n")
    script = ("import os, socket, sys; from docworkers.queue.reply_spin import ReplySpin; "
              "fd = int(sys.argv[1]); spin = ReplySpin(); "
              "print(spin.limit, spin.wait(fd), spin.spins)")
    held = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", script,
                           str(ours.fileno())], pass_fds=[ours.fileno()], capture_output=True,
                          text=True, check=True)
    free = subprocess.run([sys.executable, "-c", script, str(ours.fileno())],
                          pass_fds=[ours.fileno()], capture_output=True, text=True, check=True)
    ours.close()
    theirs.close()
    assert held.stdout.split() == ["0.0", "False", "0"]
    assert free.stdout.split() == ["5e-05", "True", "1"]
