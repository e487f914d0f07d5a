"""Redis Cluster: a primary SIGKILLed while workers drain queues on three shards, its replica
promoted by the cluster, and no job lost.

A cluster of its own (tests/redis_cluster.py: 3 primaries, 3 replicas, node timeout 1.5 s),
three queues whose hash tags land on the three primaries, one worker per queue sharing one
``redis+cluster://`` client, async producers and a synchronous one (SyncJobProducer). Every
wait is a bounded poll with a generous deadline that fails with the servers' logs; nothing is
timed.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_cluster import (
    FAILOVER_TIMEOUT_MS,
    RedisClusterSet,
    cluster_for_test,
    keyspace_client,
    settle_dropped_nodes,
    tags_on_distinct_primaries,
)

from docworkers.errors import LeaseLostError, RepositoryConnectionError
from docworkers.queue import Job, JobStatus, RedisJobRepository, RepositoryConfig
from docworkers.queue.sync_producer import SyncJobProducer
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig

DEADLINE = 60.0  # seconds any one condition gets before the test fails (a hang guard)
BEFORE = 60  # jobs per queue enqueued before the kill
AFTER = 20  # jobs per queue enqueued once the replica is promoted
KILL_AFTER = 40  # jobs run (over all queues) before the primary is killed


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisClusterSet]:
    with cluster_for_test(tmp_path, node_timeout_ms=FAILOVER_TIMEOUT_MS) as started:
        yield started


async def _until(cluster: RedisClusterSet, condition: object, what: str) -> None:
    await asyncio.to_thread(cluster.until, condition, what, DEADLINE)  # type: ignore[arg-type]


async def _enqueue(repo: RedisJobRepository, job_id: str, n: int) -> None:
    """One enqueue, sent again with the same id while the cluster has no primary for its slot
    (idempotent: a job of that id that exists is left as it is)."""
    while True:
        try:
            await repo.enqueue("count", {"n": n}, job_id=job_id)
            return
        except RepositoryConnectionError:
            await asyncio.sleep(0.05)


def _enqueue_sync(producer: SyncJobProducer, job_id: str, n: int) -> None:
    """The same through the synchronous producer (its own cluster client)."""
    while True:
        try:
            producer.enqueue("count", {"n": n}, job_id=job_id)
            return
        except RepositoryConnectionError:
            time.sleep(0.05)


async def test_a_primary_killed_mid_drain_loses_no_job(cluster: RedisClusterSet,
                                                       invariants_of: Any) -> None:
    queues = tags_on_distinct_primaries(cluster, 3, stem="shard")
    victim_queue = queues[0]
    primary = cluster.primary_of("{" + victim_queue + "}")
    replica = cluster.replica_of(primary)
    client_repo = RedisJobRepository.from_url(cluster.url, RepositoryConfig(queue=queues[0]))
    repos = [client_repo.for_queue(q) for q in queues]  # one pool for every queue
    sync_producer = SyncJobProducer.from_url(cluster.url, RepositoryConfig(queue=victim_queue))
    killed = asyncio.Event()
    kill_now = asyncio.Event()
    runs: dict[str, list[tuple[bool, int]]] = defaultdict(list)  # id -> (after kill?, token)

    async def handler(job: Job, ctx: JobContext) -> int:
        runs[job.id].append((killed.is_set(), job.token))
        if sum(map(len, runs.values())) >= KILL_AFTER:
            kill_now.set()
        await asyncio.sleep(0.01)  # a drain long enough for the kill to land mid-way
        return int(job.payload["n"])  # type: ignore[arg-type]

    ids = {q: [f"{q}-job-{n:03d}" for n in range(BEFORE + AFTER)] for q in queues}
    for repo, q in zip(repos, queues, strict=True):
        for n, job_id in enumerate(ids[q][:BEFORE]):
            await _enqueue(repo, job_id, n)
    # Replication is asynchronous: wait until the replica has every enqueue of the shard about
    # to die (a write the replica never received is lost with its primary, in any Redis).
    with primary.client() as direct:
        direct.set("{" + victim_queue + "}:replicated", "1")
        assert direct.execute_command("WAIT", 1, 10_000) == 1
    workers = [FunctionWorker(
        WorkerConfig(worker_name=f"cluster-w{i}", concurrency=2, poll_interval=0.2,
                     lease_timeout=2.0, retry_delay=0.1, retry_jitter=False),
        job_repo=repo, handlers={"count": handler}) for i, repo in enumerate(repos)]
    try:
        for worker in workers:
            await worker.start()
        await asyncio.wait_for(kill_now.wait(), DEADLINE)
        primary.kill()
        killed.set()
        await _until(cluster, lambda: replica.role() == "master" and cluster.healthy(),
                     "the cluster promotes the replica and is healthy again")
        # Producers go on after the failover: the synchronous one on the killed shard's queue.
        for n, job_id in enumerate(ids[victim_queue][BEFORE:], start=BEFORE):
            await asyncio.to_thread(_enqueue_sync, sync_producer, job_id, n)
        for repo, q in zip(repos[1:], queues[1:], strict=True):
            for n, job_id in enumerate(ids[q][BEFORE:], start=BEFORE):
                await _enqueue(repo, job_id, n)

        async def all_completed() -> dict[str, Job]:
            while True:
                jobs = {job_id: await repo.get_job(job_id)
                        for repo, q in zip(repos, queues, strict=True) for job_id in ids[q]}
                if all(job.status is JobStatus.COMPLETED for job in jobs.values()):
                    return jobs
                await asyncio.sleep(0.1)

        try:
            jobs = await asyncio.wait_for(all_completed(), DEADLINE * 2)
        except TimeoutError:
            left = {job_id: (await repo.get_job(job_id)).status
                    for repo, q in zip(repos, queues, strict=True) for job_id in ids[q]}
            left = {k: v for k, v in left.items() if v is not JobStatus.COMPLETED}
            pytest.fail(f"jobs not completed after the failover: {left}\n{cluster.logs()}",
                        pytrace=False)
        assert all(worker.is_running() for worker in workers)
    finally:
        for worker in workers:
            await worker.stop()

    try:
        # None lost, each its own result; every job ran.
        for q in queues:
            assert [jobs[job_id].result for job_id in ids[q]] == list(range(BEFORE + AFTER))
        assert set(runs) == {job_id for q in queues for job_id in ids[q]}
        # At least once: a job ran twice only if a run had started before the kill (its
        # reservation or completion died with the primary), and only on the killed shard.
        twice = {job_id: seen for job_id, seen in runs.items() if len(seen) > 1}
        assert all(not seen[0][0] for seen in twice.values()), twice
        assert all(job_id.startswith(f"{victim_queue}-") for job_id in twice), twice
        # Fencing: the attempt that was cut off cannot complete the job its rerun completed.
        for job_id, seen in twice.items():
            with pytest.raises(LeaseLostError):
                await repos[0].complete(job_id, seen[0][1])
        # The workers went on: jobs enqueued after the failover ran, on the promoted replica too.
        assert all(all(after for after, _ in runs[ids[q][-1]]) for q in queues)
        with keyspace_client(cluster.url) as client:
            for repo in repos:
                statuses = invariants_of(client, repo)
                assert set(statuses.values()) == {"completed"}
    finally:
        await client_repo.close()
        await settle_dropped_nodes()
        sync_producer.close()
        # redis-py's cluster clients can drop a node object of the killed primary with its
        # dead connection still open; collected later, it failed whichever test was running
        # then (ResourceWarning, an error in this suite; seen once in a CI run). Collect it here,
        # where it comes from: this test is about lost jobs, not redis-py's sockets.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    with replica.client() as promoted:
        assert promoted.info("replication")["role"] == "master"
        assert promoted.exists("{" + victim_queue + "}:replicated")
        # The promoted replica had none of the scripts (SCRIPT LOAD is not replicated): the
        # clients met NOSCRIPT there and loaded them into that node.
        errors = promoted.info("errorstats")
        assert int(errors.get("errorstat_NOSCRIPT", {}).get("count", 0)) > 0, errors


def test_the_cluster_fixture_places_queues_on_distinct_primaries(
        redis_cluster: RedisClusterSet) -> None:
    queues = tags_on_distinct_primaries(redis_cluster, 3)
    owners = {redis_cluster.primary_of("{" + q + "}").port for q in queues}
    assert len(owners) == 3
    with redis_cluster.nodes[0].client() as client:
        assert client.execute_command("CLUSTER INFO")["cluster_known_nodes"] == "6"
    with pytest.raises(redis.RedisError):  # a plain client is redirected, proving the slots
        for q in queues:
            with redis.Redis(port=redis_cluster.nodes[0].port) as plain:
                plain.set("{" + q + "}:x", 1)
