"""The Redis plumbing (docworkers.queue.redis): clients, the error translator, the script loader,
key names, and the one priority formula (ready_score in queue/lua/_lib.lua) seen from outside."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from docworkers.errors import ConfigurationError, RepositoryConnectionError, RepositoryError
from docworkers.queue import RedisJobRepository
from docworkers.queue.job import MAX_PRIORITY, MIN_PRIORITY
from docworkers.queue.redis.clients import ClientSettings, async_client, sync_client
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import (
    QueueKeys,
    RegistryKeys,
    concurrency_key,
    rate_limit_key,
)
from docworkers.queue.redis.scripts import lua_source, register

DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1


# -- clients ---------------------------------------------------------------------------------


async def test_every_client_gets_the_same_connection_settings(redis_url: str) -> None:
    settings = ClientSettings(socket_timeout=7.0, connect_timeout=2.0, retries=5)
    aclient = async_client(redis_url, settings)
    sclient = sync_client(redis_url, settings)
    try:
        for client in (aclient, sclient):
            kwargs = client.connection_pool.connection_kwargs
            assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (7.0, 2.0)
            assert kwargs["health_check_interval"] == 30
            assert kwargs["decode_responses"] is True
        retries = [client.get_retry() for client in (aclient, sclient)]
        assert [r.get_retries() if r else None for r in retries] == [5, 5]
        assert await aclient.ping() and sclient.ping()  # type: ignore[misc]
    finally:
        await aclient.aclose()
        sclient.close()


def test_a_bad_url_or_setting_is_a_configuration_error_naming_the_field() -> None:
    for make in (async_client, sync_client):
        with pytest.raises(ConfigurationError, match="redis_url") as error:
            make("http://localhost:6379")
        assert "'http://localhost:6379' is not a Redis URL" in str(error.value)
    with pytest.raises(ConfigurationError, match="retries"):
        ClientSettings(retries=-1)
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        ClientSettings(socket_timeout=0)


# -- errors ----------------------------------------------------------------------------------


async def test_errors_name_the_server_without_its_password() -> None:
    secret = "redis://:hunter2-secret@127.0.0.1:1/0"  # the local stack's URLs have one
    client = async_client(secret, ClientSettings(retries=0, connect_timeout=1.0))
    try:
        with pytest.raises(RepositoryConnectionError) as error, RedisErrors(url=secret):
            await client.ping()  # type: ignore[misc]
    finally:
        await client.aclose()
    assert "redis://:***@127.0.0.1:1/0" in str(error.value)
    assert "hunter2" not in str(error.value) and ".." not in str(error.value)
    with pytest.raises(ConfigurationError) as bad:
        async_client("redis://:hunter2-secret@127.0.0.1:notaport/0")
    assert "hunter2" not in str(bad.value)


async def test_an_unreachable_server_is_a_connection_error_naming_what_and_where() -> None:
    client = async_client(DOWN, ClientSettings(retries=0, connect_timeout=1.0))
    try:
        with pytest.raises(RepositoryConnectionError) as error, \
                RedisErrors("rate limit 'embed'", url=DOWN):
            await client.ping()  # type: ignore[misc]
    finally:
        await client.aclose()
    message = str(error.value)
    assert message.startswith(f"rate limit 'embed': cannot reach Redis at {DOWN}: ")
    assert "DOCWORKERS_REDIS_URL" in message
    assert isinstance(error.value.__cause__, redis.ConnectionError)


def test_a_refused_command_is_a_repository_error_not_a_connection_error(
        clean_redis: redis.Redis) -> None:
    clean_redis.set("a-string", "x")
    with pytest.raises(RepositoryError) as error, RedisErrors("document registry"):
        clean_redis.zadd("a-string", {"m": 1})  # WRONGTYPE
    assert not isinstance(error.value, RepositoryConnectionError)
    assert str(error.value).startswith("document registry: Redis failed: WRONGTYPE")


def test_docworkers_errors_pass_through_untranslated() -> None:
    inner = RepositoryConnectionError("cannot reach Redis at redis://x (inner)")
    with pytest.raises(RepositoryConnectionError) as error, RedisErrors("outer"):
        raise inner  # a ConnectionError, hence an OSError: must not be wrapped twice
    assert error.value is inner


# -- scripts ---------------------------------------------------------------------------------


def test_a_package_lib_is_prepended_to_its_own_scripts_only() -> None:
    assert "local function ready_score" in lua_source("reserve")
    # Only the helpers a script uses (lib_for): schedule_tick reads the clock, nothing else.
    assert "local function now_ms" in lua_source("schedule_tick")
    assert "local function ready_score" not in lua_source("schedule_tick")
    registry = lua_source("fence_claim", "docworkers.ingest")
    assert "ready_score" not in registry and registry.startswith("-- Claim a job's fence")


async def test_a_registered_script_survives_a_flushed_script_cache(redis_url: str,
                                                                    clean_redis: redis.Redis
                                                                    ) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        claim = register(client, "fence_claim", "docworkers.ingest")
        assert await claim(keys=["dw:{documents}:fence:q:j"], args=[2, 10_000]) == 1
        clean_redis.script_flush()
        assert await claim(keys=["dw:{documents}:fence:q:j"], args=[1, 10_000]) == 0
    finally:
        await client.aclose()


# -- keys ------------------------------------------------------------------------------------


def test_every_registry_key_carries_the_registry_hash_tag() -> None:
    keys = RegistryKeys("documents", "ns")
    names = [keys.record("d1"), keys.record_prefix, keys.collection("c"), keys.collections,
             keys.fence("uploads", "j1"), keys.alias("c"), keys.lock("c"), keys.version("c")]
    assert all(name.startswith("ns:{documents}:") for name in names), names
    assert len(set(names)) == len(names)
    assert keys.record("d1") == keys.record_prefix + "d1"


def test_limits_and_schedules_have_the_hash_tag_they_need() -> None:
    assert rate_limit_key("embed") == "dw:{ratelimit:embed}:bucket"
    assert concurrency_key("llm", "ns") == "ns:{concurrency:llm}:holders"
    assert QueueKeys("orders").schedule("nightly") == "dw:{orders}:sched:nightly:last"


# -- the priority score: one formula, in Lua -------------------------------------------------


async def test_a_minimum_priority_takes_exactly_the_jobs_at_or_above_it(
        repo: RedisJobRepository, invariants: Any) -> None:
    priorities = [MIN_PRIORITY, -1, 0, 4, 5, 6, MAX_PRIORITY]
    for priority in priorities:
        for n in range(3):  # FIFO within a class: the bound covers every arrival of a class
            await repo.enqueue("t", {"n": n}, priority=priority, job_id=f"p{priority}-{n}")
    taken = (await repo.reserve("w", 100, 30, min_priority=5)).jobs
    assert [job.id for job in taken] == [f"p{p}-{n}" for p in (MAX_PRIORITY, 6, 5)
                                         for n in range(3)]
    assert (await repo.reserve("w", 100, 30, min_priority=MAX_PRIORITY)).jobs == []
    rest = (await repo.reserve("w", 100, 30, min_priority=MIN_PRIORITY)).jobs
    assert [job.priority for job in rest] == [p for p in (4, 0, -1, MIN_PRIORITY)
                                              for _ in range(3)]
    invariants()
