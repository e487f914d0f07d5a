"""Drain throughput on Redis Cluster: three queues on three shards against the same three
queues on one node.

Run from the repository root (needs /usr/bin/redis-server and redis-cli; .ci/run installs
them):

    .venv/bin/python benchmarks/cluster_drain.py [--jobs 5000] [--repeat 3] [--concurrency 50]

It starts, in temporary folders, a real cluster (3 primaries + 3 replicas, as the tests do:
tests/redis_cluster.py) and one plain redis-server of the same binary, and measures three
set-ups with the same work: three queues, ``--jobs`` no-op jobs each (bulk-enqueued first),
drained by three worker processes (one per queue, a FunctionWorker with ``--concurrency``):

* one node: a plain redis-server (no cluster), ``redis://``;
* cluster, one shard: three queues whose hash tags land on the same primary;
* cluster, three shards: three queues whose hash tags land on three different primaries.

Drain rate = all jobs / time from the workers' start to the last completion (polled every
20 ms), median of ``--repeat`` runs with the range; with the CPU time the worker processes and
the servers (all six in the cluster) used per 1,000 jobs, which a loaded box disturbs far less
than the rates. Replicas replicate every write, as in
production. The machine's cores and load average are printed: on a 2-core box the three worker
processes, up to six servers and this process share two cores, so spreading queues over shards
cannot run more in parallel than the cores allow; the table shows what the cluster costs and
what it gives back on such a box, not what it gives on one core per shard.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the cluster the tests start: one way to start one
from redis_cluster import (  # noqa: E402
    RedisClusterSet,
    binaries,
    cluster_port,
    start_cluster,
)

from docworkers.queue import Job, JobSpec, RedisJobRepository, RepositoryConfig  # noqa: E402
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig  # noqa: E402

NAMESPACE = "bench"
ONE_NODE = "one node (plain redis-server), 3 queues"


async def _noop(job: Job, ctx: JobContext) -> None:
    return None


async def _worker(url: str, queue: str, concurrency: int, ready: Event, go: Event,
                  stop: Event, cpu: Queue[float]) -> None:
    repo = RedisJobRepository.from_url(url, RepositoryConfig(queue=queue, namespace=NAMESPACE))
    await repo.ping()
    ready.set()
    await asyncio.to_thread(go.wait)
    started = time.process_time()
    worker = FunctionWorker(
        WorkerConfig(worker_name=f"drain-{queue}", concurrency=concurrency, poll_interval=60.0),
        job_repo=repo, handlers={"noop": _noop})
    await worker.start()
    await asyncio.to_thread(stop.wait)
    cpu.put(time.process_time() - started)
    await worker.stop()
    await repo.close()


def worker_process(url: str, queue: str, concurrency: int, ready: Event, go: Event,
                   stop: Event, cpu: Queue[float]) -> None:
    asyncio.run(_worker(url, queue, concurrency, ready, go, stop, cpu))


async def _enqueue(url: str, queues: Sequence[str], jobs: int) -> list[RedisJobRepository]:
    repos = [RedisJobRepository.from_url(url, RepositoryConfig(queue=q, namespace=NAMESPACE))
             for q in queues]
    for repo in repos:
        for start in range(0, jobs, 5000):
            await repo.enqueue_many(JobSpec("noop", {"i": i})
                                    for i in range(start, min(start + 5000, jobs)))
    return repos


async def _drained(repos: Sequence[RedisJobRepository], jobs: int) -> None:
    while True:
        done = [(await repo.stats()).by_status.get("completed", 0) for repo in repos]
        if all(n >= jobs for n in done):
            return
        await asyncio.sleep(0.02)


async def _cleanup(repos: Sequence[RedisJobRepository]) -> None:
    for repo in repos:
        await repo.cleanup(0, include_dead=True)
        await repo.close()


@dataclass
class Run:
    rate: float  # jobs per second
    worker_cpu_ms: float  # CPU of the worker processes per 1,000 jobs
    server_cpu_ms: float  # CPU of every server of the set-up (replicas too) per 1,000 jobs


def drain_once(url: str, queues: Sequence[str], jobs: int, concurrency: int,
               servers: Sequence[int]) -> Run:
    """Drain ``jobs`` no-op jobs from each of ``queues``; ``servers``: every server's port."""
    before = servers_cpu(servers)
    rate, worker_cpu = asyncio.run(_drain(url, queues, jobs, concurrency))
    total = len(queues) * jobs
    return Run(rate, worker_cpu * 1e6 / total, (servers_cpu(servers) - before) * 1e6 / total)


def servers_cpu(ports: Sequence[int]) -> float:
    """CPU seconds used so far by the servers on ``ports`` (INFO cpu, user + system)."""
    total = 0.0
    for port in ports:
        with redis.Redis(port=port) as client:
            info = client.info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


async def _drain(url: str, queues: Sequence[str], jobs: int,
                 concurrency: int) -> tuple[float, float]:
    repos = await _enqueue(url, queues, jobs)
    ctx = mp.get_context("spawn")
    go, stop, cpu = ctx.Event(), ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in queues]
    processes = [ctx.Process(target=worker_process, daemon=True,
                             args=(url, q, concurrency, readies[i], go, stop, cpu))
                 for i, q in enumerate(queues)]
    for p in processes:
        p.start()
    try:
        for ready in readies:
            if not await asyncio.to_thread(ready.wait, 60):
                raise RuntimeError("a worker process did not start within 60 s")
        started = time.perf_counter()
        go.set()
        await _drained(repos, jobs)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
    worker_cpu = sum([await asyncio.to_thread(cpu.get, True, 60) for _ in processes])
    for p in processes:
        await asyncio.to_thread(p.join, 60)
    await _cleanup(repos)
    return len(queues) * jobs / elapsed, worker_cpu


def plain_server(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A plain redis-server (no cluster) of the cluster's binary, on a free port."""
    server, _ = binaries()
    port = cluster_port(set())
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--logfile", str(folder / "plain.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with redis.Redis(port=port) as client:
                client.ping()
            return process, port
        except redis.RedisError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on {port}: see {folder / 'plain.log'}")


def queue_names(cluster: RedisClusterSet, spread: bool) -> list[str]:
    """Three queue names on three primaries (``spread``) or all three on one primary."""
    by_owner: dict[int, list[str]] = {}
    for i in range(2000):
        name = f"drain{i}"
        by_owner.setdefault(cluster.primary_of("{" + name + "}").port, []).append(name)
        if spread and len(by_owner) == 3:
            return [names[0] for names in by_owner.values()]
        if not spread and any(len(names) == 3 for names in by_owner.values()):
            return next(names for names in by_owner.values() if len(names) == 3)
    raise RuntimeError("no suitable queue names found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per queue")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    results: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="cluster-drain-") as tmp:
        folder = Path(tmp)
        (folder / "plain").mkdir()
        plain, plain_port = plain_server(folder / "plain")
        cluster = start_cluster(folder / "cluster")
        every_node = [node.port for node in cluster.nodes]
        try:
            setups = {
                ONE_NODE: (f"redis://127.0.0.1:{plain_port}/0", ["drain-a", "drain-b",
                                                                  "drain-c"], [plain_port]),
                "cluster, 3 queues on 1 shard": (cluster.url, queue_names(cluster, False),
                                                 every_node),
                "cluster, 3 queues on 3 shards": (cluster.url, queue_names(cluster, True),
                                                  every_node),
            }
            for _ in range(args.repeat):  # rounds rotate through the set-ups: noise hits all
                for name, (url, queues, ports) in setups.items():
                    run = drain_once(url, queues, args.jobs, args.concurrency, ports)
                    results.setdefault(name, []).append(run)
                    print(f"  {name}: {run}", file=sys.stderr)
        finally:
            cluster.stop()
            plain.terminate()
            plain.wait(10)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nDrain, 3 queues x {args.jobs:,} no-op jobs, 3 worker processes (one per queue, "
          f"concurrency {args.concurrency}), median of {args.repeat} "
          f"[{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores; "
          f"load average {load}]\n")
    base = statistics.median(run.rate for run in results[ONE_NODE])
    print("| set-up | drain (jobs/s) | range | vs one node | worker CPU (ms / 1,000 jobs) "
          "| servers' CPU (ms / 1,000 jobs) |\n|---|---|---|---|---|---|")
    for name, runs in results.items():
        rates = [run.rate for run in runs]
        median = statistics.median(rates)
        worker = statistics.median(run.worker_cpu_ms for run in runs)
        server = statistics.median(run.server_cpu_ms for run in runs)
        print(f"| {name} | {median:,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | "
              f"{median / base:.2f}x | {worker:,.0f} | {server:,.0f} |")
    print(f"\n{os.cpu_count()} cores shared by 3 worker processes, the servers (6 in the "
          "cluster: replicas replicate every write) and this process: shards cannot run in "
          "parallel beyond the cores.")


if __name__ == "__main__":
    main()
