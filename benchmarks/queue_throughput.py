"""How fast the Redis job queue moves no-op jobs: enqueue, drain, pickup latency, commands/job.

Run from the repository root (starts a private embedded server unless --redis-url is given):

    .venv/bin/python benchmarks/queue_throughput.py [--redis-url redis://127.0.0.1:6379/13]
        [--jobs 20000] [--processes 1,2,4] [--latency-jobs 300] [--repeat 3] [--no-uvloop]
        [--enqueue-only]

Every worker runs in its own process (multiprocessing, spawn): a FunctionWorker with a no-op
async handler and concurrency 50. The producer is this process. uvloop is used when installed,
unless --no-uvloop. The synchronous producer (SyncJobProducer) enqueues one job at a time
from this process with no event loop, for code that has none. Keys live under the ``bench``
namespace and are deleted between phases, so a shared server is left as it was (FLUSHDB is
never called).

Rates are the median of --repeat runs, with the range in brackets; the machine's load average
is printed too, because on a shared box other processes take CPU from the producer, the worker
and Redis alike. The CPU rows (process CPU time per job of the worker and of Redis) depend far
less on that load than the rates do.

Commands per job come from ``INFO commandstats`` before and after one drain (bulk enqueue, one
worker process starting, draining every job, stopping) and around the pickup phase (jobs
enqueued one by one to an idle worker). Redis counts the commands a Lua script runs as well, so
the table shows two numbers: *client* commands are those no script here ever runs (EVALSHA,
BLMOVE, PING, CLIENT, CONFIG, ...; the worker's hot path sends no plain reads such as TIME or
HGETALL, which scripts also use), and *total* counts every command, inside scripts too. The
benchmark's own polling (ZCARD, ZRANGE, INFO) is subtracted. A single enqueue of a ready job is
one RPUSH on the intake list (docworkers.queue.intake); scripts push wake-up tokens with RPUSH
too, so it counts as total only (0 client / 1 total per enqueue).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any, TypeVar

import redis
from _redis import redis_server  # benchmarks/ is on sys.path when a script runs

from docworkers.queue import Job, JobSpec, RedisJobRepository, RepositoryConfig, SyncJobProducer
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig

NAMESPACE = "bench"
CONCURRENCY = 50
# Commands that no script of ours runs: every call of these was sent by a client.
CLIENT_ONLY = {"evalsha", "evalsha_ro", "eval", "eval_ro", "fcall", "fcall_ro", "blpop",
               "brpop", "blmove", "ping", "select", "hello", "auth", "multi", "exec"}
CLIENT_ONLY_PREFIXES = ("client|", "config|", "script|")
T = TypeVar("T")


# -- plumbing -------------------------------------------------------------------------------

def run(coro: Coroutine[Any, Any, T], use_uvloop: bool) -> T:
    if use_uvloop:
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def make_repo(url: str, queue: str) -> RedisJobRepository:
    return RedisJobRepository.from_url(url, RepositoryConfig(queue=queue, namespace=NAMESPACE))


def clean(admin: redis.Redis) -> None:
    keys = list(admin.scan_iter(match=f"{NAMESPACE}:*", count=1000))
    for start in range(0, len(keys), 1000):
        admin.unlink(*keys[start : start + 1000])


def command_counts(admin: redis.Redis) -> dict[str, int]:
    stats = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def redis_cpu(admin: redis.Redis) -> float:
    info = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def split_commands(before: dict[str, int], after: dict[str, int],
                   own: dict[str, int]) -> tuple[int, int]:
    """(client-issued, total) commands between two snapshots, minus our own ``own``."""
    client = total = 0
    for name, calls in after.items():
        if name == "info":
            continue
        n = calls - before.get(name, 0) - own.get(name, 0)
        total += n
        if name in CLIENT_ONLY or name.startswith(CLIENT_ONLY_PREFIXES):
            client += n
    return client, total


# -- the worker process ---------------------------------------------------------------------

async def _noop(job: Job, ctx: JobContext) -> None:
    return None


async def _stamp(job: Job, ctx: JobContext) -> float:
    return time.time()  # the producer compares it with its own clock (same machine)


async def _worker(url: str, queue: str, name: str, ready: Event, go: Event, stop: Event,
                  cpu: Queue[float]) -> None:
    repo = make_repo(url, queue)
    await repo.ping()
    ready.set()
    await asyncio.to_thread(go.wait)
    started = time.process_time()
    config = WorkerConfig(worker_name=name, concurrency=CONCURRENCY, poll_interval=60.0)
    worker = FunctionWorker(config, job_repo=repo, handlers={"noop": _noop, "stamp": _stamp})
    await worker.start()
    await asyncio.to_thread(stop.wait)
    cpu.put(time.process_time() - started)
    await worker.stop()
    await repo.close()


def worker_process(url: str, queue: str, name: str, use_uvloop: bool, ready: Event,
                   go: Event, stop: Event, cpu: Queue[float]) -> None:
    run(_worker(url, queue, name, ready, go, stop, cpu), use_uvloop)


@dataclass
class Workers:
    """Worker processes that have connected and wait for ``go``."""

    processes: Sequence[mp.process.BaseProcess]
    go: Event
    stop: Event
    cpu: Queue[float]

    @classmethod
    def spawn(cls, url: str, queue: str, count: int, use_uvloop: bool) -> Workers:
        ctx = mp.get_context("spawn")
        go, stop, cpu = ctx.Event(), ctx.Event(), ctx.Queue()
        readies = [ctx.Event() for _ in range(count)]
        processes = [
            ctx.Process(target=worker_process, daemon=True,
                        args=(url, queue, f"bench-{i}", use_uvloop, readies[i], go, stop, cpu))
            for i in range(count)
        ]
        for p in processes:
            p.start()
        for ready in readies:
            if not ready.wait(60):
                raise RuntimeError("a worker process did not start within 60 s")
        return cls(processes, go, stop, cpu)

    def finish(self) -> float:
        """Stop the workers; returns the CPU seconds they used between go and stop."""
        self.stop.set()
        used = sum(self.cpu.get(timeout=60) for _ in self.processes)
        for p in self.processes:
            p.join(60)
            if p.exitcode != 0:
                raise RuntimeError(f"worker process exited with {p.exitcode}")
        return used


# -- the phases -----------------------------------------------------------------------------

async def bench_enqueue(url: str, n: int, admin: redis.Redis) -> dict[str, float]:
    repo = make_repo(url, "enqueue")
    rates: dict[str, float] = {}
    try:
        await repo.ping()
        started = time.perf_counter()
        for i in range(n):
            await repo.enqueue("noop", {"i": i})
        rates["enqueue, sequential awaits"] = n / (time.perf_counter() - started)
        clean(admin)

        async def producer(first: int, count: int) -> None:
            for i in range(first, first + count):
                await repo.enqueue("noop", {"i": i})

        per_task = n // CONCURRENCY
        started = time.perf_counter()
        await asyncio.gather(*(producer(t * per_task, per_task) for t in range(CONCURRENCY)))
        rates[f"enqueue, {CONCURRENCY} concurrent tasks"] = (
            per_task * CONCURRENCY / (time.perf_counter() - started)
        )
        clean(admin)

        started = time.perf_counter()
        await repo.enqueue_many(JobSpec("noop", {"i": i}) for i in range(n))
        rates["enqueue_many (bulk)"] = n / (time.perf_counter() - started)
        clean(admin)
    finally:
        await repo.close()
    return rates


@dataclass
class SyncEnqueue:
    rate: float  # jobs/s
    client_commands: float  # per enqueue
    total_commands: float  # per enqueue, inside the script too


def bench_sync_enqueue(url: str, n: int, admin: redis.Redis) -> SyncEnqueue:
    """``n`` jobs enqueued one at a time by the synchronous producer, as the async
    'sequential awaits' row does, with the commands each enqueue costs."""
    config = RepositoryConfig(queue="enqueue", namespace=NAMESPACE)
    with SyncJobProducer.from_url(url, config) as producer:
        producer.ping()
        before = command_counts(admin)
        started = time.perf_counter()
        for i in range(n):
            producer.enqueue("noop", {"i": i})
        elapsed = time.perf_counter() - started
        after = command_counts(admin)
    clean(admin)
    client, total = split_commands(before, after, {})
    return SyncEnqueue(n / elapsed, client / n, total / n)


@dataclass
class Drain:
    rate: float
    client_commands: float  # per job
    total_commands: float  # per job
    worker_cpu: float  # seconds per job, all worker processes
    redis_cpu: float  # seconds per job, while draining


def bench_drain(url: str, n: int, processes: int, use_uvloop: bool,
                admin: redis.Redis) -> Drain:
    """Enqueue ``n`` jobs in bulk, then time ``processes`` workers draining them."""
    queue = f"drain{processes}"
    keys = make_repo(url, queue).keys
    before = command_counts(admin)
    run(_enqueue_bulk(url, queue, n), use_uvloop)
    workers = Workers.spawn(url, queue, processes, use_uvloop)
    cpu_before = redis_cpu(admin)
    started = time.time()
    workers.go.set()
    polls = 0
    while admin.zcard(keys.completed) < n:
        polls += 1
        time.sleep(0.005)
    last = admin.zrange(keys.completed, -1, -1, withscores=True)
    finished = float(last[0][1]) / 1000  # ms timestamp of the last completion, Redis clock
    redis_used = redis_cpu(admin) - cpu_before
    worker_used = workers.finish()
    after = command_counts(admin)
    client, total = split_commands(before, after, {"zcard": polls + 1, "zrange": 1})
    clean(admin)
    return Drain(n / max(finished - started, 1e-3), client / n, total / n, worker_used / n,
                 redis_used / n)


async def _enqueue_bulk(url: str, queue: str, n: int) -> None:
    async with make_repo(url, queue) as repo:
        await repo.enqueue_many(JobSpec("noop", {"i": i}) for i in range(n))


@dataclass
class Pickup:
    p50_ms: float
    p99_ms: float
    after_p50_ms: float  # from the moment the producer's enqueue call returned
    after_p99_ms: float
    client_commands: float  # per job, idle worker
    total_commands: float


def bench_pickup(url: str, count: int, use_uvloop: bool, admin: redis.Redis) -> Pickup:
    """An idle worker: jobs enqueued 20 ms apart; latency = handler start - before the enqueue
    call (and, to separate the producer's own round trip, - after it returned)."""
    queue = "pickup"
    workers = Workers.spawn(url, queue, 1, use_uvloop)
    workers.go.set()
    time.sleep(0.5)  # the worker is now blocked on Redis, waiting for work
    before = command_counts(admin)
    latencies, after_return = run(_produce_spaced(url, queue, count), use_uvloop)
    after = command_counts(admin)
    workers.finish()
    client, total = split_commands(before, after, {})
    clean(admin)
    quantiles = statistics.quantiles(latencies, n=100)
    after = statistics.quantiles(after_return, n=100)
    return Pickup(statistics.median(latencies), quantiles[98], statistics.median(after_return),
                  after[98], client / count, total / count)


async def _produce_spaced(url: str, queue: str, count: int) -> tuple[list[float], list[float]]:
    async with make_repo(url, queue) as repo:
        await repo.ping()
        sent: dict[str, float] = {}
        returned: dict[str, float] = {}
        for _ in range(count):
            t0 = time.time()
            job_id = await repo.enqueue("stamp", {})
            sent[job_id], returned[job_id] = t0, time.time()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        jobs = await repo.get_jobs(list(sent))
    missing = count - sum(1 for j in jobs if j.result is not None)
    if missing:
        raise RuntimeError(f"{missing} pickup job(s) did not complete")
    return ([(float(j.result) - sent[j.id]) * 1000 for j in jobs],
            [(float(j.result) - returned[j.id]) * 1000 for j in jobs])


# -- main -----------------------------------------------------------------------------------

def rate(value: float) -> str:
    return f"{value:,.0f}"


def _spread(values: list[float], fmt: Callable[[float], str]) -> str:
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}-{fmt(max(values))}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--redis-url", help="default: start a private embedded server")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--processes", default="1,2,4",
                        help="worker process counts for the scaling phase, comma-separated")
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each rate measurement")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--enqueue-only", action="store_true",
                        help="only the enqueue rows (no worker processes)")
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(",") if p.strip()]
    use_uvloop = uvloop_available() and not args.no_uvloop
    repeat = max(1, args.repeat)

    with redis_server(args.redis_url or None) as url:
        admin = redis.Redis.from_url(url, decode_responses=True)
        try:
            clean(admin)
            version = admin.info("server").get("redis_version", "?")
            print(f"# {args.jobs} no-op jobs, Redis {version} at {url}, "
                  f"loop={'uvloop' if use_uvloop else 'asyncio'}, python {sys.version.split()[0]}, "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
            rows: list[tuple[str, str, str]] = []
            enqueue: dict[str, list[float]] = {}
            for _ in range(repeat):
                for label, jobs_per_s in run(bench_enqueue(url, args.jobs, admin),
                                             use_uvloop).items():
                    enqueue.setdefault(label, []).append(jobs_per_s)
            rows += [(label, _spread(values, rate), "jobs/s") for label, values in enqueue.items()]
            sync = [bench_sync_enqueue(url, args.jobs, admin) for _ in range(repeat)]
            rows.append(("enqueue, sync producer, one at a time",
                         _spread([s.rate for s in sync], rate), "jobs/s"))
            rows.append(("  client / total commands per sync enqueue",
                         f"{sync[0].client_commands:.2f} / {sync[0].total_commands:.2f}", "cmds"))
            if args.enqueue_only:
                _print(rows)
                return
            drains = {p: [bench_drain(url, args.jobs, p, use_uvloop, admin) for _ in range(repeat)]
                      for p in dict.fromkeys([1, *counts])}
            one = drains[1]
            rows.append(("drain, 1 worker process", _spread([d.rate for d in one], rate), "jobs/s"))
            rows.append(("  worker CPU per job", _spread([d.worker_cpu * 1e6 for d in one],
                                                         lambda v: f"{v:.1f}"), "us"))
            rows.append(("  Redis CPU per job", _spread([d.redis_cpu * 1e6 for d in one],
                                                        lambda v: f"{v:.1f}"), "us"))
            pickup = bench_pickup(url, args.latency_jobs, use_uvloop, admin)
            rows.append(("pickup latency p50 (idle worker)", f"{pickup.p50_ms:.2f}", "ms"))
            rows.append(("pickup latency p99 (idle worker)", f"{pickup.p99_ms:.2f}", "ms"))
            rows.append(("  p50 / p99 after the enqueue call returned",
                         f"{pickup.after_p50_ms:.2f} / {pickup.after_p99_ms:.2f}", "ms"))
            rows.append(("client commands/job (bulk enqueue + drain)",
                         f"{one[0].client_commands:.3f}", "cmds"))
            rows.append(("total commands/job incl. inside scripts", f"{one[0].total_commands:.2f}",
                         "cmds"))
            rows.append(("client commands/job (idle worker, one by one)",
                         f"{pickup.client_commands:.2f}", "cmds"))
            rows.append(("total commands/job (idle worker, one by one)",
                         f"{pickup.total_commands:.2f}", "cmds"))
            for p in counts:
                rows.append((f"scaling: drain, {p} worker process{'es' if p > 1 else ''}",
                             _spread([d.rate for d in drains[p]], rate), "jobs/s"))
            _print(rows)
        finally:
            clean(admin)
            admin.close()


def _print(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    for label, value, unit in rows:
        print(f"{label:<{width}}  {value:>{value_width}}  {unit}")
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
