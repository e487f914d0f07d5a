"""How long the command line and the core take to start: wall time of whole processes.

Run from the repository root (starts a private embedded Redis unless --redis-url is given):

    .venv/bin/python benchmarks/cli_startup.py [--runs 10] [--redis-url redis://127.0.0.1:6379/13]

Each command runs --runs times as a fresh process (after one unmeasured warm-up run, so the
page cache and Python's bytecode cache are warm as they are for a user's second call; the
children run without PYTHONDONTWRITEBYTECODE, which some sandboxes set and which would make
every run compile every module from source, ~0.4 s); the table shows the median, the fastest
and the slowest run against the targets. The queue the commands read is empty or small; what is
measured is start-up: interpreter, imports, settings, one Redis connection and the output.
The load average is printed because other processes on a 2-core box slow every row alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _redis import redis_server  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: (label, argv, target seconds or None)
COMMANDS: list[tuple[str, list[str], float | None]] = [
    ("python -c pass (the floor)", [sys.executable, "-c", "pass"], None),
    ("import docworkers.queue", [sys.executable, "-c", "import docworkers.queue"], None),
    ("docworkers --help", [str(BIN / "docworkers"), "--help"], 0.35),
    ("docworkers jobs list", [str(BIN / "docworkers"), "jobs", "list"], 0.5),
    ("docworkers stats", [str(BIN / "docworkers"), "stats"], 0.5),
]


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--redis-url", help="a running Redis (default: a private one)")
    args = parser.parse_args()

    with redis_server(args.redis_url) as url:
        env = {**os.environ, "DOCWORKERS_REDIS_URL": url, "DOCWORKERS_QUEUE": "startup-bench"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        rows = []
        for label, argv, target in COMMANDS:
            timed(argv, env)  # warm-up
            runs = [timed(argv, env) for _ in range(args.runs)]
            rows.append((label, statistics.median(runs), min(runs), max(runs), target))

    load = os.getloadavg()
    print(f"\nStart-up, {args.runs} runs each (load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}, {os.cpu_count()} cores)\n")
    print(f"| {'command':<28} | median s | min s | max s | target s | met |")
    print(f"|{'-' * 30}|----------|-------|-------|----------|-----|")
    for label, median, fastest, slowest, target in rows:
        goal = f"{target:.2f}" if target is not None else "-"
        met = "-" if target is None else ("yes" if median <= target else "NO")
        print(f"| {label:<28} | {median:8.3f} | {fastest:5.3f} | {slowest:5.3f} | {goal:>8} "
              f"| {met:<3} |")


if __name__ == "__main__":
    main()
