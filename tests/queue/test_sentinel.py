"""Redis Sentinel: a master killed mid-run, its replica promoted, and no job lost.

Real servers on free loopback ports, all from the valkey binary docworkers ships: a master, one
replica and three sentinels (quorum 2). Producers and a worker reach them only through a
``redis+sentinel://`` URL. Every wait has a generous deadline that fails the test with the
servers' logs; nothing is timed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from server_start import fail_to_start, server_output

from docworkers.embedded import server_binary
from docworkers.errors import ConfigurationError, JobNotFoundError, RepositoryConnectionError
from docworkers.ingest.document_repository import DocumentRecord, DocumentStatus
from docworkers.queue import Job, JobStatus, RedisJobRepository, RepositoryConfig
from docworkers.queue.redis.clients import sync_client
from docworkers.queue.sync_producer import SyncJobProducer
from docworkers.runtime import Runtime
from docworkers.settings import Settings
from docworkers.stack.servers import free_port
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig

MASTER = "jobs"  # the name the sentinels know the master by
DEADLINE = 30.0  # seconds any one condition gets before the test fails (a hang guard)


@dataclass
class Node:
    """One valkey process (a server or a sentinel) with its log."""

    name: str
    port: int
    log: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class SentinelSet:
    master: Node
    replica: Node
    sentinels: list[Node] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return [self.master, self.replica, *self.sentinels]

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/{db}"

    def logs(self) -> str:
        return "\n".join(f"--- {node.name} ({node.log}) ---\n{server_output(node.log)}"
                         for node in self.nodes)

    def all_name(self, port: int) -> bool:
        """True when every sentinel names the server on ``port`` as the master."""
        for node in self.sentinels:
            with node.client() as client:
                address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
            if not address or int(address[1]) != port:
                return False
        return True

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers names it."""
        for node in self.sentinels:
            try:
                with node.client() as client:
                    address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                                     MASTER)
            except redis.RedisError:
                continue
            return int(address[1]) if address else None
        return None


def start_sentinel_set(folder: Path) -> SentinelSet:
    """Master, replica and three sentinels, each checked before the next starts."""
    binary = server_binary()

    def server(name: str, *extra: str) -> Node:
        port = free_port()
        log = folder / f"{name}.log"
        return Node(name, port, log, [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--dbfilename", f"{name}.rdb", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", str(log), *extra])

    # The master refuses writes when no replica is connected within 10 s of lag: a write it
    # acknowledges has at least been sent to the replica (replication stays asynchronous).
    master = server("master", "--min-replicas-to-write", "1", "--min-replicas-max-lag", "10")
    replica = server("replica", "--replicaof", "127.0.0.1", str(master.port),
                     "--replica-announce-ip", "127.0.0.1")
    nodes = SentinelSet(master, replica)
    for i in range(3):
        port = free_port()
        conf = folder / f"sentinel-{i}.conf"  # the sentinel rewrites it: it must be writable
        conf.write_text("\n".join([
            f"port {port}", "bind 127.0.0.1", f"dir {folder}",
            f"logfile {conf.with_suffix('.log')}",
            "sentinel announce-ip 127.0.0.1",
            f"sentinel monitor {MASTER} 127.0.0.1 {master.port} 2",
            f"sentinel down-after-milliseconds {MASTER} 1000",
            f"sentinel failover-timeout {MASTER} 5000",
            f"sentinel parallel-syncs {MASTER} 1", ""]))
        nodes.sentinels.append(Node(f"sentinel-{i}", port, conf.with_suffix(".log"),
                                    [binary, str(conf), "--sentinel"]))
    for node in nodes.nodes:
        node.start()
        try:
            _until(lambda n=node: _answers(n), f"{node.name} answers PING", nodes)
        except pytest.fail.Exception:
            stop(nodes)
            raise
    return nodes


def stop(nodes: SentinelSet) -> None:
    for node in nodes.nodes:
        node.stop()


def _answers(node: Node) -> bool:
    if node.process is not None and node.process.poll() is not None:
        fail_to_start(node.name, RuntimeError(f"exited with {node.process.returncode}"),
                      node.log)
    try:
        with node.client() as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _until(condition: Callable[[], bool], what: str, nodes: SentinelSet,
           deadline: float = DEADLINE) -> None:
    """Poll ``condition`` (a blocking check) until it holds; fail with every log if it never
    does within ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"never true within {deadline} s: {what}\n{nodes.logs()}", pytrace=False)
        time.sleep(0.05)


def _ready(nodes: SentinelSet) -> bool:
    """The replica is in sync and every sentinel knows the replica and the two others (a
    failover needs a quorum and a majority of votes)."""
    if _good_replicas(nodes.master) != 1:
        return False  # min-replicas-to-write would refuse writes
    for node in nodes.sentinels:
        with node.client() as client:
            state = client.execute_command("SENTINEL", "MASTER", MASTER)
        info = dict(zip(state[::2], state[1::2], strict=True)) if isinstance(state, list) \
            else state
        if int(info["num-other-sentinels"]) != 2 or int(info["num-slaves"]) != 1:
            return False
    return True


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    nodes = start_sentinel_set(tmp_path)
    try:
        _until(lambda: _ready(nodes), "replica in sync and sentinels acquainted", nodes)
        yield nodes
    finally:
        stop(nodes)


async def _until_async(condition: Callable[[], bool], what: str, nodes: SentinelSet,
                       deadline: float = DEADLINE) -> None:
    await asyncio.to_thread(_until, condition, what, nodes, deadline)


N_JOBS = 240
KILL_AFTER = 60  # jobs run before the master is killed


async def test_failover_mid_run_loses_no_job(sentinel_set: SentinelSet) -> None:
    nodes = sentinel_set
    url = nodes.url(db=0)
    config = RepositoryConfig(queue="sentinel")
    worker_repo = RedisJobRepository.from_url(url, config)
    producer_repo = RedisJobRepository.from_url(url, config)
    sync_producer = SyncJobProducer.from_url(url, config)
    killed = asyncio.Event()
    kill_now = asyncio.Event()
    runs: dict[str, list[bool]] = defaultdict(list)  # job id -> per run: after the kill?

    async def handler(job: Job, ctx: JobContext) -> int:
        runs[job.id].append(killed.is_set())
        if len(runs) >= KILL_AFTER:
            kill_now.set()
        return int(job.payload["n"])  # type: ignore[arg-type]

    async def produce() -> list[str]:
        """Half the jobs through the async repository, half through SyncJobProducer, one at a
        time; an enqueue that cannot reach Redis is sent again with the same id (idempotent)."""
        ids = []
        for n in range(N_JOBS):
            job_id = f"job-{n:04d}"
            while True:
                try:
                    if n % 2:
                        await asyncio.to_thread(sync_producer.enqueue, "count", {"n": n},
                                                job_id=job_id)
                    else:
                        await producer_repo.enqueue("count", {"n": n}, job_id=job_id)
                    break
                except RepositoryConnectionError:  # no master yet (redis-py's retries ran out)
                    await asyncio.sleep(0.05)
            ids.append(job_id)
            await asyncio.sleep(0.005)
        return ids

    worker = FunctionWorker(
        WorkerConfig(worker_name="sentinel-w", concurrency=4, poll_interval=0.2,
                     lease_timeout=2.0, retry_delay=0.1, retry_jitter=False),
        job_repo=worker_repo, handlers={"count": handler})
    old_master = nodes.master.port
    try:
        await worker.start()
        producing = asyncio.create_task(produce())
        await asyncio.wait_for(kill_now.wait(), DEADLINE)
        assert not producing.done()  # the kill lands mid-run
        nodes.master.kill()
        killed.set()
        await _until_async(lambda: nodes.master_port() == nodes.replica.port,
                           "the sentinels promote the replica", nodes)
        ids = await asyncio.wait_for(producing, DEADLINE * 2)

        async def all_completed() -> list[Job]:
            while True:
                jobs = [await worker_repo.get_job(job_id) for job_id in ids]
                if all(job.status is JobStatus.COMPLETED for job in jobs):
                    return jobs
                await asyncio.sleep(0.1)

        try:
            jobs = await asyncio.wait_for(all_completed(), DEADLINE * 2)
        except TimeoutError:
            states = {job_id: (await worker_repo.get_job(job_id)).status for job_id in ids}
            left = {k: v for k, v in states.items() if v is not JobStatus.COMPLETED}
            pytest.fail(f"jobs not completed after the failover: {left}\n{nodes.logs()}",
                        pytrace=False)
        assert worker.is_running()
    finally:
        await worker.stop()
        await worker_repo.close()
        await producer_repo.close()
        sync_producer.close()

    assert nodes.master_port() == nodes.replica.port != old_master
    with nodes.replica.client() as promoted:
        assert promoted.info("replication")["role"] == "master"
        # The promoted server had none of the queue's scripts: the clients met NOSCRIPT and
        # loaded them again (redis-py's Script, run_pipelined, the waiter's fallback).
        assert int(promoted.info("errorstats").get("errorstat_NOSCRIPT", {}).get("count", 0)) > 0
    assert [job.result for job in jobs] == list(range(N_JOBS))  # none lost, each its own
    assert set(runs) == set(ids)  # every job ran
    # At least once: a job ran twice only if a run of it had started before the kill (its
    # lease, or its completion, was lost with the master); every job enqueued later ran once.
    twice = {job_id for job_id, after in runs.items() if len(after) > 1}
    assert all(not runs[job_id][0] for job_id in twice), {j: runs[j] for j in twice}
    # The worker went on after the failover: jobs enqueued past the kill ran, on the new master.
    assert any(all(after) for after in runs.values())


async def test_runtime_parts_follow_the_failover(sentinel_set: SentinelSet,
                                                 tmp_path: Path) -> None:
    """The runtime built from DOCWORKERS_REDIS_URL: the document registry (the job
    repository's client) and the limits of an external service (the sync client) work before
    the master is killed and on the promoted replica after; the local stack is not started."""
    nodes = sentinel_set
    settings = Settings(redis_url=nodes.url(), home=str(tmp_path / "home"))
    assert not settings.local_redis
    async with Runtime(settings) as runtime:
        assert runtime.redis_url == nodes.url()
        await runtime.documents.register(
            DocumentRecord("before", "docs", "a.txt", DocumentStatus.COMPLETED))
        guard = runtime.service_guard("sentinel-svc", rate_limit=1000, max_concurrency=2)
        assert await asyncio.to_thread(guard.call, lambda: 1) == 1
        with nodes.master.client() as master:  # the replica has it all before the kill
            assert master.execute_command("WAIT", 1, 10_000) == 1
        nodes.master.kill()
        await _until_async(lambda: nodes.all_name(nodes.replica.port),
                           "every sentinel names the promoted replica", nodes)
        record = await runtime.documents.get("before")
        assert record is not None and record.status is DocumentStatus.COMPLETED
        await runtime.documents.register(
            DocumentRecord("after", "docs", "b.txt", DocumentStatus.PENDING))

        def holds_a_slot_on_the_promoted_server() -> bool:  # runs inside guard.call
            with nodes.replica.client() as promoted:
                return any("sentinel-svc" in key for key in promoted.keys("*"))

        assert await asyncio.to_thread(guard.call, holds_a_slot_on_the_promoted_server)
    assert not (tmp_path / "home").exists()  # no local valkey was started
    with nodes.replica.client() as promoted:
        assert promoted.info("replication")["role"] == "master"
        assert promoted.exists("dw:{documents}:doc:after")


def test_sentinel_url_reaches_the_master_through_the_sync_client(
        sentinel_set: SentinelSet) -> None:
    """The sync client (limits, SyncJobProducer) asks the sentinels; db and close work."""
    client = sync_client(sentinel_set.url(db=3))
    try:
        client.set("k", "v")
        with sentinel_set.master.client() as direct:
            direct.select(3)
            assert direct.get("k") == "v"
    finally:
        client.close()
    assert all(not sentinel.connection_pool._in_use_connections  # type: ignore[attr-defined]
               for sentinel in client.sentinels)  # type: ignore[attr-defined]


def test_a_master_without_its_replica_refuses_writes_as_unavailable(
        sentinel_set: SentinelSet) -> None:
    """min-replicas-to-write refuses the enqueue (NOREPLICAS) and stores nothing; docworkers
    reports it as Redis being unavailable for now (the worker waits and retries), not as a
    failed command."""
    config = RepositoryConfig(queue="sentinel")
    with SyncJobProducer.from_url(sentinel_set.url(), config) as producer:
        producer.enqueue("count", {"n": 0}, job_id="before")
        sentinel_set.replica.kill()
        _until(lambda: _good_replicas(sentinel_set.master) == 0, "the master sees no replica",
               sentinel_set)
        with pytest.raises(RepositoryConnectionError, match="cannot take writes now: NOREPLICAS"):
            producer.enqueue("count", {"n": 1}, job_id="refused")
        assert producer.get("before").status is JobStatus.QUEUED
        with pytest.raises(JobNotFoundError):
            producer.get("refused")


def _good_replicas(node: Node) -> int:
    with node.client() as client:
        return int(client.info("replication")["min_slaves_good_slaves"])


@pytest.mark.parametrize(("url", "complaint"), [
    ("redis+sentinel://:s3cret@127.0.0.1:26379", "the master's name is missing"),
    ("redis+sentinel://:s3cret@127.0.0.1:port/jobs", "is not a port number"),
    ("redis+sentinel://:s3cret@127.0.0.1:26379/jobs/zero", "is not a number"),
    ("redis+sentinel://:s3cret@127.0.0.1:26379,/jobs", "host is missing"),
    ("redis+sentinel://:s3cret@127.0.0.1:26379/jobs?ssl=1", "options"),
    ("rediss+sentinel://:s3cret@127.0.0.1:26379/jobs", "TLS"),
])
def test_a_malformed_sentinel_url_is_a_configuration_error(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(redis_url=url)
    message = str(caught.value)
    assert message.startswith("redis_url:") and complaint in message
    assert "s3cret" not in message and ":***@" in message
    with pytest.raises(ConfigurationError):
        sync_client(url)
