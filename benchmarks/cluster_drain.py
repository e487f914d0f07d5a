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
20 ms), median of ``--repeat`` runs with the range. Replicas replicate every write, as in
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
from multiprocessing.synchronize import Event
from pathlib import Path

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


async def _noop(job: Job, ctx: JobContext) -> None:
    return None


async def _worker(url: str, queue: str, concurrency: int, ready: Event, go: Event,
                  stop: Event) -> None:
    repo = RedisJobRepository.from_url(url, RepositoryConfig(queue=queue, namespace=NAMESPACE))
    await repo.ping()
    ready.set()
    await asyncio.to_thread(go.wait)
    worker = FunctionWorker(
        WorkerConfig(worker_name=f"drain-{queue}", concurrency=concurrency, poll_interval=60.0),
        job_repo=repo, handlers={"noop": _noop})
    await worker.start()
    await asyncio.to_thread(stop.wait)
    await worker.stop()
    await repo.close()


def worker_process(url: str, queue: str, concurrency: int, ready: Event, go: Event,
                   stop: Event) -> None:
    asyncio.run(_worker(url, queue, concurrency, ready, go, stop))


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


def drain_once(url: str, queues: Sequence[str], jobs: int, concurrency: int) -> float:
    """Jobs per second to drain ``jobs`` no-op jobs from each of ``queues``."""
    return asyncio.run(_drain(url, queues, jobs, concurrency))


async def _drain(url: str, queues: Sequence[str], jobs: int, concurrency: int) -> float:
    repos = await _enqueue(url, queues, jobs)
    ctx = mp.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    readies = [ctx.Event() for _ in queues]
    processes = [ctx.Process(target=worker_process, daemon=True,
                             args=(url, q, concurrency, readies[i], go, stop))
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
        for p in processes:
            await asyncio.to_thread(p.join, 60)
        await _cleanup(repos)
    return len(queues) * jobs / elapsed


def plain_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A plain redis-server (no cluster) of the cluster's binary, on a free port."""
    server, _ = binaries()
    port = cluster_port(set())
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--logfile", str(folder / "plain.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    for _ in range(200):
        try:
            with redis.Redis(port=port) as client:
                client.ping()
            return process, f"redis://127.0.0.1:{port}/0"
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
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="cluster-drain-") as tmp:
        folder = Path(tmp)
        (folder / "plain").mkdir()
        plain, plain_url = plain_server(folder / "plain")
        cluster = start_cluster(folder / "cluster")
        try:
            setups = {
                "one node (plain redis-server), 3 queues": (plain_url, ["drain-a", "drain-b",
                                                                         "drain-c"]),
                "cluster, 3 queues on 1 shard": (cluster.url, queue_names(cluster, False)),
                "cluster, 3 queues on 3 shards": (cluster.url, queue_names(cluster, True)),
            }
            for _ in range(args.repeat):  # rounds rotate through the set-ups: noise hits all
                for name, (url, queues) in setups.items():
                    rate = drain_once(url, queues, args.jobs, args.concurrency)
                    results.setdefault(name, []).append(rate)
                    print(f"  {name}: {rate:,.0f} jobs/s", file=sys.stderr)
        finally:
            cluster.stop()
            plain.terminate()
            plain.wait(10)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nDrain, 3 queues x {args.jobs:,} no-op jobs, 3 worker processes (one per queue, "
          f"concurrency {args.concurrency}), median of {args.repeat} "
          f"[{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores; "
          f"load average {load}]\n")
    base = statistics.median(results["one node (plain redis-server), 3 queues"])
    print("| set-up | drain (jobs/s) | range | vs one node |\n|---|---|---|---|")
    for name, rates in results.items():
        median = statistics.median(rates)
        print(f"| {name} | {median:,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | "
              f"{median / base:.2f}x |")
    print(f"\n{os.cpu_count()} cores shared by 3 worker processes, the servers (6 in the "
          "cluster: replicas replicate every write) and this process: shards cannot run in "
          "parallel beyond the cores.")


if __name__ == "__main__":
    main()
