"""What dynamic concurrency buys: fixed concurrency against ``min_concurrency`` autoscaling.

Run from the repository root (a private embedded Redis unless --redis-url is given):

    .venv/bin/python benchmarks/autoscale.py [--redis-url URL] [--jobs 400]

Two kinds of job, each drained by one worker with a fixed limit of 3, a fixed limit of 32,
and autoscaling between 1 and 32:

* ``io``: waits 50 ms on I/O (``asyncio.sleep``): more slots mean more throughput;
* ``cpu``: hashes 24 MB in a thread (hashlib releases the GIL, so both cores work): past two
  slots each job only waits longer, and every job in flight holds memory.

The table shows throughput, the median and p95 time from a job's start to its end, and the
largest number of jobs the worker ran at once. A good policy matches the best fixed limit on
throughput for both kinds without being told which kind it runs, and keeps the latency of CPU
jobs near that of a small fixed limit.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from _redis import redis_server  # benchmarks/ is on sys.path when a script runs

from docworkers.queue import Job, JobSpec, RedisJobRepository, RepositoryConfig
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig

BLOB = os.urandom(24 * 2**20)


async def io_job() -> None:
    await asyncio.sleep(0.05)


async def cpu_job() -> None:
    await asyncio.to_thread(lambda: hashlib.sha256(BLOB).digest())


KINDS: dict[str, Callable[[], Awaitable[None]]] = {"io": io_job, "cpu": cpu_job}
POLICIES = {
    "fixed 3": {"concurrency": 3},
    "fixed 32": {"concurrency": 32},
    "autoscale 1-32": {"concurrency": 32, "min_concurrency": 1, "scale_interval": 0.25},
}


@dataclass
class Row:
    kind: str
    policy: str
    jobs_per_s: float
    p50_ms: float
    p95_ms: float
    peak: int
    final_limit: int


async def drain(url: str, kind: str, policy: str, jobs: int) -> Row:
    repo = RedisJobRepository.from_url(url, RepositoryConfig(queue=f"autoscale-{kind}",
                                                             namespace="bench"))
    durations: list[float] = []
    running = peak = 0
    work = KINDS[kind]

    async def handler(job: Job, ctx: JobContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        started = time.perf_counter()
        try:
            await work()
        finally:
            durations.append(time.perf_counter() - started)
            running -= 1

    await repo.enqueue_many([JobSpec(kind, {"i": i}) for i in range(jobs)])
    config = WorkerConfig(worker_name=f"bench-{kind}", poll_interval=0.5,
                          **POLICIES[policy])  # type: ignore[arg-type]
    worker = FunctionWorker(config, job_repo=repo, handlers={kind: handler})
    started = time.perf_counter()
    async with worker:
        while len(durations) < jobs:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        limit = worker.stats().concurrency
    await repo.cleanup(0)
    await repo.close()
    cuts = statistics.quantiles(durations, n=20)
    return Row(kind, policy, jobs / elapsed, statistics.median(durations) * 1000,
               cuts[18] * 1000, peak, limit)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url")
    parser.add_argument("--jobs", type=int, default=400)
    args = parser.parse_args()
    with redis_server(args.redis_url or None) as url:
        print(f"# {args.jobs} jobs per run, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f} at start\n")
        print("| job | policy | jobs/s | p50 ms | p95 ms | most at once |")
        print("|---|---|---|---|---|---|")
        for kind in KINDS:
            for policy in POLICIES:
                r = await drain(url, kind, policy, args.jobs)
                print(f"| {r.kind} | {r.policy} | {r.jobs_per_s:,.0f} | {r.p50_ms:,.0f} | "
                      f"{r.p95_ms:,.0f} | {r.peak} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
