"""The local stack with real servers: one valkey and one `chroma run` per data folder, found by
every process, replaced when stale, never confused with servers it did not start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from docworkers.embedded import EmbeddedRedis
from docworkers.stack import LocalStack
from docworkers.stack.servers import REDIS, alive, free_port, processes_with
from docworkers.stack.state import ServerRecord, StackState

Stacks = Callable[[str], LocalStack]


def record(stack: LocalStack, name: str) -> ServerRecord:
    return StackState.read(stack.home).servers[name]


def test_the_first_user_starts_the_servers_and_the_others_find_them(stacks: Stacks) -> None:
    stack = stacks("home")
    url = stack.url("redis")
    client = redis.Redis.from_url(url)
    assert client.ping() and client.config_get("appendonly") == {"appendonly": "yes"}
    with pytest.raises(redis.AuthenticationError):  # a password nobody else knows
        redis.Redis(port=record(stack, "redis").port).ping()
    assert LocalStack(stack.home).url("redis") == url  # another process's view: the same
    chroma = stack.url("chroma")
    assert httpx.get(f"{chroma}/api/v2/heartbeat").status_code == 200
    state = stack.home / "stack.json"
    assert state.stat().st_mode & 0o777 == 0o600  # it holds the password
    assert set(json.loads(state.read_text())["servers"]) == {"redis", "chroma"}
    shown = {s.name: s for s in stack.status()}
    assert shown["redis"].running and shown["redis"].pid == record(stack, "redis").pid
    assert shown["redis"].url is not None and record(stack, "redis").password not in \
        shown["redis"].url
    assert shown["chroma"].memory_mb and shown["chroma"].data_bytes > 0


def test_concurrent_first_users_start_one_server(stacks: Stacks) -> None:
    stack = stacks("home")
    code = ("import sys; from docworkers.stack import LocalStack; "
            "print(LocalStack(sys.argv[1]).url('redis'))")
    users = [subprocess.Popen([sys.executable, "-c", code, str(stack.home)],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    urls = {user.communicate(timeout=60)[0].strip() for user in users}
    assert len(urls) == 1 and all(user.returncode == 0 for user in users)
    assert len(processes_with(REDIS.marker(stack.home))) == 1


def test_a_killed_server_is_replaced_on_the_same_data(stacks: Stacks) -> None:
    stack = stacks("home")
    client = redis.Redis.from_url(stack.url("redis"))
    client.set("kept", "yes")
    client.execute_command("WAITAOF", 1, 0, 5000)  # on disk before the kill
    old = record(stack, "redis").pid
    os.kill(old, signal.SIGKILL)
    url = stack.url("redis")
    assert record(stack, "redis").pid != old
    assert redis.Redis.from_url(url).get("kept") == b"yes"


def test_leftovers_of_a_killed_starter_are_stopped_before_a_new_start(stacks: Stacks) -> None:
    stack = stacks("home")
    stack.url("redis")
    orphan = record(stack, "redis").pid
    (stack.home / "stack.json").unlink()  # the starter died before it wrote the state
    stack.url("redis")
    assert not alive(orphan) and record(stack, "redis").pid != orphan
    assert processes_with(REDIS.marker(stack.home)) == [record(stack, "redis").pid]


def test_servers_nobody_started_are_never_touched(stacks: Stacks, tmp_path: Path) -> None:
    stack = stacks("home")
    foreign = EmbeddedRedis(base_dir=tmp_path / "foreign")
    foreign.start()
    try:
        assert foreign.process is not None and foreign.port is not None
        # A state file that names someone else's server (a reused pid, a copied folder).
        StackState({"redis": ServerRecord("redis", foreign.process.pid, foreign.port, 0.0, 1,
                                          "x")}).write(stack.home)
        mine = stack.url("redis")
        assert foreign.process.poll() is None and f":{foreign.port}/" not in mine
        stack.down()
        assert foreign.process.poll() is None  # down stops only the stack's own servers
    finally:
        foreign.stop()


def test_two_data_folders_never_share_a_server(stacks: Stacks) -> None:
    first, second = stacks("first"), stacks("second")
    a, b = redis.Redis.from_url(first.url("redis")), redis.Redis.from_url(second.url("redis"))
    a.set("only-in-first", 1)
    assert b.get("only-in-first") is None
    assert record(first, "redis").pid != record(second, "redis").pid
    assert first.url("chroma") != second.url("chroma")


def test_down_then_up_keeps_the_data(stacks: Stacks) -> None:
    stack = stacks("home")
    redis.Redis.from_url(stack.url("redis")).set("kept", "yes")
    chroma_pid = record(stack, "chroma").pid if "chroma" in StackState.read(
        stack.home).servers else None
    assert chroma_pid is None  # Chroma starts only when someone needs it
    stopped = stack.down()
    assert [r.name for r in stopped] == ["redis"] and not any(s.running for s in stack.status())
    assert stack.down() == []  # idempotent
    records = stack.up()
    assert set(records) == {"redis", "chroma"}
    assert redis.Redis.from_url(stack.url("redis")).get("kept") == b"yes"


def test_a_restarted_server_keeps_its_address_so_clients_reconnect(stacks: Stacks) -> None:
    stack = stacks("home")
    url, chroma = stack.url("redis"), stack.url("chroma")
    client = redis.Redis.from_url(url)  # a long-running process's connection
    client.set("kept", "yes")
    stack.down()
    with pytest.raises(redis.ConnectionError):
        client.get("kept")
    stack.up()
    assert (stack.url("redis"), stack.url("chroma")) == (url, chroma)
    assert client.get("kept") == b"yes"  # the same client, reconnected


def test_a_port_taken_by_someone_else_is_not_ours(stacks: Stacks) -> None:
    stack = stacks("home")
    port = free_port()
    StackState({"chroma": ServerRecord("chroma", os.getpid(), port, 0.0, 1)}).write(stack.home)
    assert stack.status()[1].running is False  # this test process is no Chroma server
    url = stack.url("chroma")  # started anew (on the recorded port, free), this pid spared
    assert httpx.get(f"{url}/api/v2/heartbeat").status_code == 200
    assert record(stack, "chroma").pid != os.getpid() and alive(os.getpid())
