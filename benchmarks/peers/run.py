"""docworkers beside huey, taskiq, saq, dramatiq, arq and celery: same Redis, same no-op job.

Run from the repository root with the project's interpreter:

    .venv/bin/python benchmarks/peers/run.py [--jobs 10000] [--runs 3] [--only huey,docworkers]
        [--redis-url redis://127.0.0.1:6379/14] [--pickup-jobs 1000] [--spacing 0.01]
        [--cpus 1:1 | --no-pin]

The peers live in their own virtualenv, ``benchmarks/peers/.venv``, made here on first use from
the pinned ``requirements.txt`` (the project's lock never sees them); docworkers runs from the
project's virtualenv, twice: ``docworkers`` enqueues with the asyncio repository,
``docworkers_sync`` with ``SyncJobProducer`` (the same worker drains both), and a third time as
``docworkers_c3``, its worker at concurrency 3 (the upload workers' default, for CPU-bound jobs)
instead of a generic worker's default 50 (the only row not at its defaults, labelled so). Every
system gets one adapter, ``peer_NAME.py``, run as a subprocess, and runs at its defaults with
one worker process. The job is the same everywhere: one ``INCR`` (redis-py sends it as
``INCRBY key 1``). ``bare`` is no queue at all (``peer_bare.py``): redis-py's RPUSH and one
BLPOP loop, the anchor that shows what the machine allows (its pickup is the floor under every
system's: a producer and a worker woken through the server, nothing in between).

Per system and run, on an emptied database (FLUSHDB of the chosen DB between phases):

- *enqueue*: N jobs, one call at a time, timed inside the producer process;
- *drain*: those N jobs by one worker process started afterwards, timed by polling the counter
  from the first job seen done to the last (process start-up is not counted);
- *pickup*: an idle worker, jobs enqueued ``--spacing`` s apart; each job writes its start time
  minus the time just before its enqueue call (same machine, same clock); p50 / p99;
- *CPU per job*: user + system CPU time of the worker process (with any processes it started)
  and of the Redis server over the drain, from the first job seen done to the last, divided by
  the jobs done meanwhile (Linux ``/proc``; blank where the server runs elsewhere). Unlike the
  rates, it hardly depends on what else the machine runs: a drain rate measures how fast a
  worker goes with the CPU it gets, this what each job costs;
- *Redis commands*: ``INFO commandstats`` deltas (commands run inside Lua scripts count too),
  per enqueue over the enqueue phase and per job over the drain, from the worker's start, idle
  polls and start-up included; the harness's own INFO and GET polls and the jobs' INCRs are
  subtracted. commandstats are server-wide, so the default is a private server (valkey, started
  here) where nothing else runs;
- *one client's ceiling*: once per run, before the systems, ``redis-benchmark -c 1 -t rpush``
  (Debian's redis-tools) on the same server and CPUs as the adapters: one client sending each
  push after the last reply, what a one-at-a-time enqueue can reach there; docworkers' enqueue
  rates are printed as a fraction of it.

Same conditions for every system, so that the ratios mean something on a small shared machine:

- *pinned CPUs*: with ``--cpus S:C`` the Redis server (every thread of it) runs on CPU ``S``
  and every adapter process (producer, worker, and whatever it starts: threads and forks
  inherit the mask) on CPU ``C``; this harness (its polls) on another CPU if there is one. The
  default, ``1:1`` on 2 CPUs or more, puts the server and the adapters on one CPU: each system
  then runs as on one core of its own, and its rates follow from its CPU per job and its round
  trips. Left to the scheduler, the server, worker and producer land anew in every run and
  move between the cores, and whether a wake-up crosses cores changes an enqueue or a drain by
  a factor: placement, not the code, decided much of the spread. Measured 2026-12-06 with
  docworkers and huey, 3 interleaved runs each, max ÷ min over the runs (load 3-4.4, another
  agent's benchmark on the same cores): not pinned, enqueue 1.17-2.06 (two sessions), drain
  1.20-1.73; ``0:1`` (server and clients on different CPUs) 1.25-2.70 and 1.56-1.72, and huey
  paid 1.5x its CPU per job, the worker and the server each waking across cores at every
  command; ``1:1``, enqueue 1.03 (docworkers) and 1.23 (huey), drain 1.20 and 1.03, with the
  same CPU per job as not pinned. One CPU is a placement too, not a neutral one: a worker and
  the server can no longer run at once, so a drain bounded by CPU (docworkers at concurrency
  50) loses against one bounded by round trips (huey's one job per BRPOP), whose ping-pong
  gets cheaper on one core; and a pickup's p99 mostly shows how long other programs hold that
  CPU (about 6 ms for every system at load 3-4). ``--no-pin`` leaves placement to the
  scheduler (the 2-core figures); report which one a table used. Pinning cannot keep other
  programs off that CPU: it gives every system the same placement, not a quiet machine;
- *interleaved runs*: run ``r`` measures every system once before run ``r + 1`` starts, the
  order rotated by one system per run, so a burst of load from elsewhere hits the systems alike
  instead of all the runs of one of them;
- the *load average* (1 min) is printed at the start and end, and with each run on stderr.

Results are the medians over ``--runs``, then the spread (min-max over the runs) of the rates
and latencies; the first table ends with docworkers ÷ peer for each column (ratios of medians).
With the ``bare`` row in the run, each system's pickup p50 is also given above bare's (the two
processes' wake-ups, which no queue avoids), and docworkers' share of each peer's.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis

from docworkers.embedded import EmbeddedRedis

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
# docworkers_sync: the same worker, jobs enqueued by the synchronous producer
# docworkers_c3: the same worker at concurrency 3 (the upload workers'), its async producer
PEERS = (
    "docworkers",
    "docworkers_sync",
    "docworkers_c3",
    "huey",
    "taskiq",
    "dramatiq",
    "saq",
    "arq",
    "celery",
    "bare",
)
OURS = ("docworkers", "docworkers_sync", "docworkers_c3")
COUNTER, PICKUP = "peers:count", "peers:pickup"  # as in _common.py
DEFAULT_DB = 14
STALL = 60.0  # seconds without progress before a peer counts as failed


class PeerFailed(RuntimeError):
    pass


def peers_python() -> Path:
    """The peers' interpreter: the virtualenv is made, and (re)filled when requirements change."""
    python = VENV / "bin" / "python"
    wanted = (HERE / "requirements.txt").read_text()
    installed = VENV / "installed-requirements.txt"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not installed.exists() or installed.read_text() != wanted:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")],
            check=True,
        )
        installed.write_text(wanted)
    return python


def pin_to(cpus: set[int] | None) -> None:
    """Hold this process to ``cpus`` (None: leave it). Run in a child before exec (as its
    ``preexec_fn``): the mask is inherited by everything it starts from then on."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


@dataclass
class Peer:
    name: str
    python: Path
    env: dict[str, str]
    log: Path

    cpus: set[int] | None = None  # the adapter processes' CPUs (None: not pinned)

    def _pin(self) -> None:
        pin_to(self.cpus)

    def command(self, *args: str) -> list[str]:
        return [str(self.python), str(HERE / f"peer_{self.name}.py"), *args]

    def run(self, *args: str, timeout: float) -> str:
        done = subprocess.run(
            self.command(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=self._pin,
        )
        if done.returncode != 0:
            raise PeerFailed(f"{self.name} {args[0]} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def start_worker(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                self.command("worker"),
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=self._pin,
            )

    @staticmethod
    def stop_worker(worker: subprocess.Popen[bytes]) -> None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@dataclass
class Result:
    enqueue: float  # jobs/s
    drain: float  # jobs/s
    p50: float  # ms
    p99: float
    per_enqueue: float  # Redis commands
    per_job: float
    worker_cpu: float  # µs of CPU per job drained: the worker's processes
    server_cpu: float  # and the Redis server's (nan when it is not on this machine)


def command_counts(admin: redis.Redis) -> dict[str, int]:
    stats = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def commands_since(before: dict[str, int], admin: redis.Redis, own: dict[str, int]) -> int:
    """Commands run since ``before`` minus ``own``; the INFO that took ``before`` counts as own."""
    after = command_counts(admin)
    own = {**own, "info": own.get("info", 0) + 1}
    return sum(calls - before.get(name, 0) - own.get(name, 0) for name, calls in after.items())


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` and its live descendants, with the children
    they reaped (Linux /proc); nan if unknown."""
    if pid is None:
        return float("nan")
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it exited meanwhile
            continue
        parents[int(entry.name)] = int(stat[1])
        spent[int(entry.name)] = sum(int(v) for v in stat[11:15]) / tick
    if pid not in spent:
        return float("nan")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += spent.get(current, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


def server_pid(admin: redis.Redis) -> int | None:
    """The Redis server's process id, if it runs on this machine (a loopback address)."""
    host = admin.connection_pool.connection_kwargs.get("host", "")
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    info: dict[str, Any] = admin.info("server")  # type: ignore[assignment]  # sync client
    return int(info["process_id"])


@dataclass
class Drain:
    rate: float  # jobs/s from the first job seen done
    polls: int  # the harness's GETs of the counter
    worker_cpu: float  # µs per job over the same span
    server_cpu: float


def wait_drained(
    admin: redis.Redis, jobs: int, worker: subprocess.Popen[bytes], server: int | None
) -> Drain:
    """Poll the counter until ``jobs`` are done (see :class:`Drain`)."""
    polls, first, first_count, last_change, seen = 0, 0.0, 0, time.monotonic(), 0
    cpu_at_first = (0.0, 0.0)
    while True:
        count = int(admin.get(COUNTER) or 0)
        now = time.perf_counter()
        polls += 1
        if count and not first:
            first, first_count = now, count
            cpu_at_first = (cpu_seconds(worker.pid), cpu_seconds(server))
        if count >= jobs:
            done = max(jobs - first_count, 1)
            return Drain(
                done / max(now - first, 1e-6),
                polls,
                (cpu_seconds(worker.pid) - cpu_at_first[0]) / done * 1e6,
                (cpu_seconds(server) - cpu_at_first[1]) / done * 1e6,
            )
        if count != seen:
            seen, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > STALL or worker.poll() is not None:
            raise PeerFailed(f"the worker stopped at {count} of {jobs} jobs")
        time.sleep(0.002)


def measure(peer: Peer, admin: redis.Redis, jobs: int, pickup_jobs: int, spacing: float) -> Result:
    admin.flushdb()
    before = command_counts(admin)
    seconds = float(peer.run("enqueue", str(jobs), timeout=STALL + jobs / 100))
    per_enqueue = commands_since(before, admin, {}) / jobs

    before = command_counts(admin)
    worker = peer.start_worker()
    try:
        drain = wait_drained(admin, jobs, worker, server_pid(admin))
        per_job = commands_since(before, admin, {"get": drain.polls, "incrby": jobs}) / jobs
    finally:
        peer.stop_worker(worker)

    admin.flushdb()
    worker = peer.start_worker()
    try:
        peer.run(
            "pickup", str(pickup_jobs), str(spacing), timeout=STALL + pickup_jobs * (spacing + 0.5)
        )
        latencies = [float(ms) for ms in admin.lrange(PICKUP, 0, -1)]
    finally:
        peer.stop_worker(worker)
    admin.flushdb()
    centiles = statistics.quantiles(latencies, n=100)
    return Result(
        jobs / seconds,
        drain.rate,
        statistics.median(latencies),
        centiles[98],
        per_enqueue,
        per_job,
        drain.worker_cpu,
        drain.server_cpu,
    )


def summary(results: Sequence[Result]) -> Result:
    """The median of each column on its own."""
    return Result(
        **{f.name: statistics.median(getattr(r, f.name) for r in results) for f in fields(Result)}
    )


def one_client_rate(url: str, cpus: set[int] | None, requests: int) -> float | None:
    """``redis-benchmark -c 1 -t rpush``'s rate on the harness's server and placement: what one
    client waiting for every reply can reach there, the ceiling of a one-at-a-time enqueue.
    None when redis-benchmark is not installed (Debian's redis-tools has it) or the URL is TLS."""
    tool = shutil.which("redis-benchmark")
    parts = urlparse(url)
    if tool is None or parts.scheme != "redis":
        return None
    command = [tool, "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
    if parts.password:
        command += ["-a", parts.password] + (["--user", parts.username] if parts.username else [])
    db = parts.path.strip("/") or "0"
    command += ["--dbnum", db, "-c", "1", "-n", str(requests), "-t", "rpush", "-q", "--csv"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=STALL + requests / 100,
        preexec_fn=lambda: pin_to(cpus),
    )
    for line in done.stdout.splitlines():
        cells = [cell.strip('"') for cell in line.split(",")]
        if cells[0] == "RPUSH":
            return float(cells[1])
    return None


def print_ceiling(rates: Sequence[float], rows: dict[str, Result]) -> None:
    if not rates:
        print("\none client's ceiling: not measured (no redis-benchmark, or a TLS server)")
        return
    ceiling = statistics.median(rates)
    reached = ", ".join(
        f"{label.split()[0]} {r.enqueue / ceiling:.2f}"
        for label, r in rows.items()
        if label.split()[0] in OURS
    )
    print(
        f"\none client's ceiling (`redis-benchmark -c 1 -t rpush`, same server and placement, "
        f"median of {len(rates)}): {num(ceiling)} requests/s ({spread(rates)}); "
        f"fraction reached by one-at-a-time enqueue: {reached}"
    )


def pin_server(pid: int, cpu: int) -> None:
    """Every thread of process ``pid`` (a Redis server has background threads) onto ``cpu``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


def parse_cpus(text: str) -> tuple[int, int]:
    server, _, clients = text.partition(":")
    return int(server), int(clients)


def num(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 or value == 0 else f"{value:.2f}"


def cmds(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def ratio(ours: float, theirs: float) -> str:
    if not theirs or math.isnan(ours) or math.isnan(theirs):
        return "-"
    return f"{ours / theirs:.2f}" if ours / theirs >= 0.1 else f"{ours / theirs:.2g}"


def spread(values: Sequence[float], fmt: Any = None) -> str:
    fmt = fmt or num
    return (
        fmt(min(values))
        if min(values) == max(values)
        else (f"{fmt(min(values))}-{fmt(max(values))}")
    )


def print_spread(runs: dict[str, list[Result]]) -> None:
    print("\nspread over the runs (min-max)\n")
    print(
        "| | enqueue (jobs/s) | drain (jobs/s) | pickup p50 (ms) | pickup p99 (ms) "
        "| CPU per job, worker (µs) |"
    )
    print("|---|---|---|---|---|---|")
    for label, results in runs.items():
        print(
            f"| {label} | {spread([r.enqueue for r in results])} "
            f"| {spread([r.drain for r in results])} | {spread([r.p50 for r in results])} "
            f"| {spread([r.p99 for r in results])} "
            f"| {spread([r.worker_cpu for r in results])} |"
        )


def print_tables(rows: dict[str, Result], failed: dict[str, str]) -> None:
    print(
        "| | enqueue one at a time (jobs/s) | drain (jobs/s) | pickup p50 / p99 (ms) "
        "| Redis commands per enqueue + per run | CPU per job drained, worker + Redis (µs) |"
    )
    print("|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(
            f"| {label} | {num(r.enqueue)} | {num(r.drain)} | {num(r.p50)} / {num(r.p99)} "
            f"| {cmds(r.per_enqueue)} + {cmds(r.per_job)} "
            f"| {num(r.worker_cpu)} + {num(r.server_cpu)} |"
        )
    for label, error in failed.items():
        print(f"| {label} | failed: {error.splitlines()[-1][:120]} | | | | |")
    for mine, ours in rows.items():
        if mine.split()[0] not in OURS:
            continue
        print(
            f"\n{mine.split()[0]} ÷ peer (rates: above 1 = docworkers faster; latency and "
            "commands: below 1 = docworkers lower)\n"
        )
        print(
            "| | enqueue | drain | pickup p50 / p99 | commands per enqueue / per run "
            "| CPU per job, worker / Redis |"
        )
        print("|---|---|---|---|---|---|")
        for label, r in rows.items():
            if label.split()[0] not in OURS:
                print(
                    f"| {label} | {ratio(ours.enqueue, r.enqueue)} "
                    f"| {ratio(ours.drain, r.drain)} "
                    f"| {ratio(ours.p50, r.p50)} / {ratio(ours.p99, r.p99)} "
                    f"| {ratio(ours.per_enqueue, r.per_enqueue)} / "
                    f"{ratio(ours.per_job, r.per_job)} "
                    f"| {ratio(ours.worker_cpu, r.worker_cpu)} / "
                    f"{ratio(ours.server_cpu, r.server_cpu)} |"
                )


def print_above_floor(rows: dict[str, Result]) -> None:
    """Pickup p50 less the ``bare`` row's (no queue: RPUSH, BLPOP), the part a system adds to
    the two processes' wake-ups, and docworkers' share of each peer's: the wake-ups move with
    the machine and the load, and hide the difference in a plain ratio."""
    floor = next((r.p50 for label, r in rows.items() if label.split()[0] == "bare"), None)
    if floor is None or math.isnan(floor):
        return
    above = {label: r.p50 - floor for label, r in rows.items() if label.split()[0] != "bare"}
    print(f"\npickup p50 above the bare floor ({num(floor)} ms): "
          + ", ".join(f"{label.split()[0]} {num(value)} ms" for label, value in above.items()))
    for mine, ours in above.items():
        if mine.split()[0] in OURS:
            print(f"  {mine.split()[0]} ÷ peer: " + ", ".join(
                f"{label.split()[0]} {ratio(ours, theirs)}" for label, theirs in above.items()
                if label.split()[0] not in OURS and theirs > 0))


def with_db(url: str) -> str:
    return url if urlparse(url).path.strip("/") else f"{url.rstrip('/')}/{DEFAULT_DB}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--redis-url",
        help=f"default: a private server; DB {DEFAULT_DB} unless the URL names one (it is FLUSHed)",
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--only", default=",".join(PEERS), help="comma-separated, of " + ", ".join(PEERS)
    )
    parser.add_argument(
        "--pickup-jobs", type=int, default=1000, help="jobs per pickup run (p99: the 10th worst)"
    )
    parser.add_argument("--spacing", type=float, default=0.01, help="seconds between pickup jobs")
    parser.add_argument(
        "--cpus",
        default="1:1" if (os.cpu_count() or 1) >= 2 else None,
        help="SERVER:CLIENTS, the CPU of the Redis server and the CPU of every adapter "
        "process (default 1:1, one CPU for both)",
    )
    parser.add_argument("--no-pin", action="store_true", help="leave placement to the scheduler")
    args = parser.parse_args()
    cpus = None if args.no_pin or not args.cpus else parse_cpus(args.cpus)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := set(names) - set(PEERS):
        parser.error(f"unknown peer(s) {sorted(unknown)}; choose from {', '.join(PEERS)}")
    others = peers_python() if set(names) - set(OURS) else None

    server = None
    if args.redis_url:
        url = with_db(args.redis_url)
    else:
        server = EmbeddedRedis()
        url = with_db(server.start())
    admin = redis.Redis.from_url(url, decode_responses=True)
    logs = Path(tempfile.mkdtemp(prefix="peers-"))  # worker stderr, kept if a peer failed
    failed: dict[str, str] = {}
    try:
        info = admin.info("server")
        server_name = (
            f"valkey {info['valkey_version']}"
            if "valkey_version" in info
            else (f"Redis {info['redis_version']}")
        )
        pid = server_pid(admin)
        if cpus is not None:
            if pid is None:
                parser.error("--cpus needs the server on this machine; pass --no-pin")
            pin_server(pid, cpus[0])
            spare = sorted(os.sched_getaffinity(0) - set(cpus))
            os.sched_setaffinity(0, {spare[0] if spare else cpus[0]})
        load = os.getloadavg()[0]
        env = {**os.environ, "PEERS_REDIS_URL": url}
        peers: dict[str, Peer] = {}
        for name in names:
            python = Path(sys.executable) if name in OURS else others
            assert python is not None
            peer = Peer(
                name, python, env, logs / f"{name}.log", None if cpus is None else {cpus[1]}
            )
            version = peer.run("version", timeout=60).strip()
            peers[f"{name} {version}"] = peer
        runs: dict[str, list[Result]] = {label: [] for label in peers}
        loads: list[float] = []
        ceilings: list[float] = []
        for run in range(args.runs):
            ceiling = one_client_rate(url, None if cpus is None else {cpus[1]}, args.jobs)
            if ceiling is not None:
                ceilings.append(ceiling)
            labels = list(peers)
            labels = labels[run % len(labels) :] + labels[: run % len(labels)]
            for label in labels:
                if label in failed:
                    continue
                loads.append(os.getloadavg()[0])
                print(
                    f"# run {run + 1}: {label} (load {loads[-1]:.1f}) ...",
                    file=sys.stderr,
                    flush=True,
                )
                try:
                    runs[label].append(
                        measure(peers[label], admin, args.jobs, args.pickup_jobs, args.spacing)
                    )
                except (PeerFailed, subprocess.TimeoutExpired) as exc:
                    failed[label] = str(exc)
                    print(f"#   failed: {exc} (worker log: {peers[label].log})", file=sys.stderr)
        runs = {label: results for label, results in runs.items() if label not in failed}
        rows = {label: summary(results) for label, results in runs.items()}
        placement = (
            "not pinned" if cpus is None else f"server on CPU {cpus[0]}, adapters on CPU {cpus[1]}"
        )
        print(
            f"# {args.jobs:,} no-op jobs (one INCR), one worker process each, medians of "
            f"{args.runs} interleaved run(s); {server_name} at {url}; python "
            f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, {placement}; load average "
            f"{load:.1f} at start, {os.getloadavg()[0]:.1f} at the end "
            f"(range {min(loads, default=load):.1f}-{max(loads, default=load):.1f})\n"
        )
        print_tables(rows, failed)
        print_ceiling(ceilings, rows)
        print_above_floor(rows)
        print_spread(runs)
    finally:
        admin.close()
        if not failed:
            shutil.rmtree(logs, ignore_errors=True)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
