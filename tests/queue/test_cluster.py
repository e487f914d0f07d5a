"""Redis Cluster: the URL, the clients, scripts per node, and every part of docworkers that
keeps state in Redis, on the session's real cluster (tests/redis_cluster.py).

Queues, workers, uploads and fenced-out attempts run their own suites on the cluster too
(test_cluster_suites.py); a failover has its own test (test_cluster_failover.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis_cluster import RedisClusterSet, keyspace_client, tags_on_distinct_primaries

from docworkers.errors import ConfigurationError
from docworkers.ingest.aliases import CollectionAliases, CollectionLock
from docworkers.ingest.document_repository import (
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
)
from docworkers.ingest.embedding_cache import EmbeddingCache
from docworkers.ingest.lexical.index import LexicalChunk, LexicalIndex
from docworkers.queue import RedisJobRepository, RepositoryConfig
from docworkers.queue.history import HistoryReader
from docworkers.queue.rate_limit import RedisConcurrencyLimiter, RedisRateLimiter
from docworkers.queue.rate_limit_sync import SyncConcurrencyLimiter, SyncRateLimiter
from docworkers.queue.redis.clients import async_client, is_cluster, sync_client
from docworkers.queue.redis.cluster_url import ClusterURL
from docworkers.queue.redis.errors import RedisErrors
from docworkers.queue.redis.keys import RegistryKeys
from docworkers.queue.redis.scripts import ScriptCall, register, run_pipelined
from docworkers.queue.scheduler import Schedule, Scheduler
from docworkers.queue.spec import JobSpec
from docworkers.queue.sync_producer import SyncJobProducer
from docworkers.queue.waiter import MAX_BLOCK
from docworkers.runtime import Runtime
from docworkers.settings import Settings

# -- the URL ---------------------------------------------------------------------------------


def test_a_cluster_url_names_its_nodes_user_password_and_options() -> None:
    parts = ClusterURL.parse("redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002"
                             "/?socket_timeout=2&client_name=dw")
    assert parts.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert parts.options["username"] == "app" and parts.options["password"] == "s@cret"
    assert parts.options["socket_timeout"] == 2.0 and parts.options["client_name"] == "dw"
    assert not parts.tls
    assert ClusterURL.parse("rediss+cluster://:pw@h:7000/0").tls
    assert "username" not in ClusterURL.parse("redis+cluster://:pw@h:7000").options
    assert Settings(redis_url="redis+cluster://h:7000,h:7001").redis_url


@pytest.mark.parametrize(("url", "complaint"), [
    ("redis+cluster://:s3cret@h:7000/1", "one database"),
    ("redis+cluster://:s3cret@h:port", "is not a port number"),
    ("redis+cluster://:s3cret@h:7000,", "host is missing"),
    ("redis+cluster://:s3cret@h:7000/?socket_timeout=soon", "socket_timeout"),
    ("valkey+cluster://:s3cret@h:7000", "scheme must be"),
])
def test_a_malformed_cluster_url_is_a_configuration_error(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(redis_url=url)
    message = str(caught.value)
    assert message.startswith("redis_url:") and complaint in message
    assert "s3cret" not in message and ":***@" in message
    with pytest.raises(ConfigurationError):
        sync_client(url)


# -- clients and scripts ---------------------------------------------------------------------


@pytest.fixture
def cluster(redis_cluster: RedisClusterSet) -> Iterator[RedisClusterSet]:
    """The session's cluster, emptied (every primary) before the test."""
    redis_cluster.flush()
    yield redis_cluster


async def test_both_clients_are_cluster_clients_with_the_settings(
        cluster: RedisClusterSet) -> None:
    aclient, sclient = async_client(cluster.url), sync_client(cluster.url)
    try:
        assert isinstance(aclient, AsyncRedisCluster) and isinstance(sclient, RedisCluster)
        assert is_cluster(aclient) and is_cluster(sclient)
        assert not is_cluster(redis.Redis())
        for q in tags_on_distinct_primaries(cluster, 3):  # a key on every primary
            await aclient.set("{" + q + "}:a", "1")
            assert sclient.get("{" + q + "}:a") == "1"
        kwargs = aclient.get_connection_kwargs()
        assert (kwargs["socket_timeout"], kwargs["decode_responses"]) == (10.0, True)
    finally:
        await aclient.aclose()
        sclient.close()


async def test_clients_find_the_cluster_again_after_losing_every_startup_node(
        cluster: RedisClusterSet) -> None:
    # redis-py drops a node from its startup nodes on each connection error or timeout; on a
    # loaded machine a failover emptied the list and the client never found the cluster again
    # (seen in CI). The state that left, made by hand: the next topology read must still work.
    aclient, sclient = async_client(cluster.url), sync_client(cluster.url)
    key = "{" + tags_on_distinct_primaries(cluster, 1)[0] + "}:before"
    try:
        await aclient.set(key, "1")
        assert sclient.get(key) == "1"
        await aclient.nodes_manager.aclose("startup_nodes")  # as redis-py does before a re-read
        for client in (aclient, sclient):
            client.nodes_manager.startup_nodes.clear()
        await aclient.nodes_manager.initialize()
        sclient.nodes_manager.initialize()
        for q in tags_on_distinct_primaries(cluster, 3):
            await aclient.set("{" + q + "}:again", "1")
            assert sclient.get("{" + q + "}:again") == "1"
        assert aclient.nodes_manager.startup_nodes and sclient.nodes_manager.startup_nodes
    finally:
        await aclient.aclose()
        sclient.close()


async def test_scripts_are_loaded_into_each_node_that_lacks_them(
        cluster: RedisClusterSet) -> None:
    """SCRIPT FLUSH on every node (as a promoted replica has none): the next call on each
    primary meets NOSCRIPT and loads the script into that node; a pipelined batch over three
    shards recovers the same way, and so does the sync client."""
    queues = tags_on_distinct_primaries(cluster, 3)
    keys = [[f"dw:{{{q}}}:fence:q:j"] for q in queues]
    aclient, sclient = async_client(cluster.url), sync_client(cluster.url)
    try:
        claim = register(aclient, "fence_claim", "docworkers.ingest")
        sclaim = register(sclient, "fence_claim", "docworkers.ingest")
        for round_, token in enumerate((5, 6, 7)):
            for node in cluster.live():
                with node.client() as direct:
                    direct.script_flush()
            if round_ == 0:
                assert [await claim(keys=k, args=[token, 10_000]) for k in keys] == [1, 1, 1]
            elif round_ == 1:
                calls = [ScriptCall(claim, k, [token, 10_000]) for k in keys]
                assert await run_pipelined(aclient, calls, loaded={claim.sha},
                                           errors=RedisErrors()) == [1, 1, 1]
            else:
                assert [sclaim(keys=k, args=[token, 10_000]) for k in keys] == [1, 1, 1]
        for q in queues:
            with cluster.primary_of("{" + q + "}").client() as owner:
                assert owner.script_exists(claim.sha) == [True]
    finally:
        await aclient.aclose()
        sclient.close()


async def test_bulk_enqueues_over_several_script_calls(cluster: RedisClusterSet) -> None:
    """More than one enqueue.lua call: the async repository pipelines them, the sync producer
    pipelines them too (a cluster pipeline, EVALSHA routed by its keys)."""
    queue_a, queue_b = tags_on_distinct_primaries(cluster, 2)
    async with RedisJobRepository.from_url(cluster.url, RepositoryConfig(queue=queue_a)) as repo:
        ids = await repo.enqueue_many(JobSpec("t", {"i": i}) for i in range(1200))
        assert (await repo.stats()).by_status["queued"] == 1200 and len(set(ids)) == 1200
    with SyncJobProducer.from_url(cluster.url, RepositoryConfig(queue=queue_b)) as producer:
        ids = producer.enqueue_many(JobSpec("t", {"i": i}) for i in range(1200))
        assert producer.get(ids[-1]).payload == {"i": 1199}
        assert producer.cancel(ids[0]) == "cancelled"


async def test_a_primary_that_may_evict_is_warned_whichever_it_is(
        cluster: RedisClusterSet) -> None:
    """CONFIG GET on a cluster client asks one node; the check asks every primary."""
    queue = tags_on_distinct_primaries(cluster, 1)[0]
    async with RedisJobRepository.from_url(cluster.url, RepositoryConfig(queue=queue)) as repo:
        assert await repo.check_server() == []
        primaries = [node for node in cluster.live()
                     if node.client().execute_command("ROLE")[0] in ("master", b"master")]
        assert len(primaries) == 3
        for evicting in primaries:
            with evicting.client() as client:
                client.config_set("maxmemory-policy", "allkeys-lru")
                try:
                    warnings = await repo.check_server()
                finally:
                    client.config_set("maxmemory-policy", "noeviction")
            assert len(warnings) == 1, warnings
            assert f"node 127.0.0.1:{evicting.port}" in warnings[0]
            assert "maxmemory-policy=allkeys-lru" in warnings[0]


async def test_stats_history_and_workers_across_queues_on_different_shards(
        cluster: RedisClusterSet) -> None:
    queues = tags_on_distinct_primaries(cluster, 3)
    async with RedisJobRepository.from_url(cluster.url, RepositoryConfig(queue=queues[0])) \
            as first:
        repos = [first.for_queue(q) for q in queues]
        for n, repo in enumerate(repos):
            for i in range(n + 1):
                await repo.enqueue("t", {"i": i})
            reservation = await repo.reserve(f"w{n}", 1, 30)
            await repo.complete(reservation.jobs[0].id, reservation.jobs[0].token, {"ok": 1})
            await repo.heartbeat(f"w{n}", {"name": f"w{n}"}, 30, 30, [])
        stats = [await repo.stats() for repo in repos]
        assert [s.total_completed for s in stats] == [1, 1, 1]
        assert [s.by_status["queued"] for s in stats] == [0, 1, 2]
        assert [s.active_workers for s in stats] == [1, 1, 1]
        history = HistoryReader(first.client, [repo.keys for repo in repos])
        totals = await history.totals()
        assert totals.durations["t"].count == 3  # one job of each queue, summed


async def test_scheduler_claims_each_tick_once(cluster: RedisClusterSet) -> None:
    queue, target = tags_on_distinct_primaries(cluster, 2)
    async with RedisJobRepository.from_url(cluster.url, RepositoryConfig(queue=queue)) as repo:
        hourly = Schedule("hourly", "t", cron="0 * * * *", queue=target)
        ticks = [Scheduler(repo, [hourly], clock=lambda: 1_709_640_000.5)  # 2024-03-05 12:00
                 for _ in range(2)]
        first = [await scheduler.run_once() for scheduler in ticks]
        assert sorted(len(ids) for ids in first) == [0, 1]  # one process enqueued the tick
        assert (await repo.for_queue(target).stats()).by_status["queued"] == 1


# -- limits, registry, aliases, keyword index, embedding cache -------------------------------


@pytest.fixture
async def aclient(cluster: RedisClusterSet) -> AsyncIterator[Any]:
    client = async_client(cluster.url)
    yield client
    await client.aclose()


async def test_rate_and_concurrency_limits_sync_and_async_share_their_state(
        cluster: RedisClusterSet, aclient: Any) -> None:
    sclient = sync_client(cluster.url)
    try:
        rate = RedisRateLimiter(aclient, "embed", rate=1, burst=2)
        srate = SyncRateLimiter(sclient, "embed", rate=1, burst=2)
        assert await rate.try_acquire() == 0.0 and srate.try_acquire() == 0.0
        assert await rate.try_acquire() > 0 and srate.try_acquire() > 0  # one bucket
        slots = RedisConcurrencyLimiter(aclient, "api", 1, lease=30)
        sslots = SyncConcurrencyLimiter(sclient, "api", 1, lease=30)
        assert await slots.try_acquire("a") == 0.0
        assert sslots.try_acquire("b") > 0  # the one slot is held, whichever client asks
        await slots.release("a")
        assert sslots.try_acquire("b") == 0.0
        sslots.release("b")
    finally:
        sclient.close()


async def test_registry_aliases_keywords_and_embedding_cache(cluster: RedisClusterSet,
                                                             aclient: Any) -> None:
    documents = DocumentRepository(aclient, url=cluster.url)
    for i, collection in enumerate(["a", "b", "a"]):
        await documents.register(DocumentRecord(f"d{i}", collection, f"f{i}.txt",
                                                DocumentStatus.COMPLETED))
    assert (await documents.get("d1")).collection == "b"  # type: ignore[union-attr]
    assert sorted(await documents.collections()) == ["a", "b"]
    listed = await documents.list_documents(limit=10)
    assert sorted(d.document_id for d in listed) == ["d0", "d1", "d2"]
    assert await documents.delete("d0") and await documents.get("d0") is None

    aliases = CollectionAliases(aclient, keys=RegistryKeys("documents"), url=cluster.url)
    async with CollectionLock(aliases, "a", owner="job-1"):
        await aliases.switch("a", "a__v2", owner="job-1")
    assert await aliases.resolve("a") == "a__v2"

    keywords = LexicalIndex(aclient, url=cluster.url)
    await keywords.replace_document("a__v2", "d2", [
        LexicalChunk("d2:0", "d2", "invoice number ZX-42 overdue"),
        LexicalChunk("d2:1", "d2", "weather report for tuesday")])
    hits = await keywords.search("a__v2", "invoice overdue", 5)
    assert [hit.chunk_id for hit in hits][:1] == ["d2:0"]
    rescored = await keywords.score("a__v2", ["d2:0", "d2:1"], {"invoic": 1.0, "overdu": 1.0})
    assert rescored == [pytest.approx(hits[0].score), 0.0]  # one pipelined read, one slot
    assert await keywords.drop_collection("a__v2") >= 1

    cache = EmbeddingCache.from_url(cluster.url)
    try:
        vector = np.arange(4, dtype=np.float32).tobytes()
        await cache.put_many([("m:x", vector), ("m:y", vector)])
        assert await cache.get_many(["m:x", "m:z", "m:y"]) == [vector, None, vector]
    finally:
        await cache.aclose()
    with keyspace_client(cluster.url) as client:  # each part kept to its own hash tag
        tags = {key.split(":")[1] for key in client.keys("*")}
        assert tags <= {"{documents}", "{embeddings}"}, tags


async def test_the_runtime_from_a_cluster_url(cluster: RedisClusterSet, tmp_path: Path) -> None:
    """DOCWORKERS_REDIS_URL=redis+cluster://...: the runtime's job repository, document
    registry (its client) and service limits (the sync client) all use the cluster; no local
    server is started."""
    settings = Settings(redis_url=cluster.url, home=str(tmp_path / "home"))
    assert not settings.local_redis
    async with Runtime(settings) as runtime:
        job_id = await runtime.jobs.enqueue("t", {"x": 1})
        assert (await runtime.jobs.get_job(job_id)).payload == {"x": 1}
        await runtime.documents.register(
            DocumentRecord("r", "docs", "r.txt", DocumentStatus.PENDING))
        guard = runtime.service_guard("cluster-svc", rate_limit=1000, max_concurrency=2)
        assert await asyncio.to_thread(guard.call, lambda: 7) == 7
    assert not (tmp_path / "home").exists()


async def test_the_waiter_blocks_on_its_queues_primary_and_is_ended_there(
        cluster: RedisClusterSet) -> None:
    """Each queue's idle wait blocks on the primary owning that queue's slot; an enqueue wakes
    it, and interrupt() sends CLIENT UNBLOCK to that primary, not to the client's default
    node."""
    for queue in tags_on_distinct_primaries(cluster, 3):
        owner = cluster.primary_of("{" + queue + "}")
        async with RedisJobRepository.from_url(cluster.url, RepositoryConfig(queue=queue)) \
                as repo:
            waiter = repo.waiter()
            await waiter.connect()
            try:
                for wake in ("enqueue", "interrupt"):
                    waiting = asyncio.create_task(waiter.wait(MAX_BLOCK))
                    await asyncio.to_thread(cluster.until, lambda o=owner: _blocked(o) == 1,
                                            f"a client blocked on {owner.address}")
                    if wake == "enqueue":
                        await repo.enqueue("t", {})
                        assert await waiting is True
                    else:
                        await waiter.interrupt()
                        assert await waiting is False
                        with owner.client() as direct:
                            stats = direct.info("commandstats")
                        assert stats["cmdstat_client|unblock"]["calls"] >= 1
            finally:
                await waiter.close()


def _blocked(node: Any) -> int:
    with node.client() as client:
        return int(client.info("clients")["blocked_clients"])
