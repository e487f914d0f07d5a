"""The local stack: how long its servers take to start, how long each command takes on it, and
how much memory the two servers use idle.

    .venv/bin/python benchmarks/local_stack.py [--runs 5]

Runs in a temporary folder with no DOCWORKERS_* variable (the embedded defaults). Cold rows
start from a stopped stack (`docworkers down` before each run); warm rows find the servers
running. Each row is the median of --runs fresh processes (after one unmeasured warm-up run for
the warm rows); children run without PYTHONDONTWRITEBYTECODE, as a user's shell does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from docworkers.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
DOCWORKERS = str(Path(sys.executable).with_name("docworkers"))
SAMPLE = ROOT / "examples" / "docs"

WARM: list[tuple[str, list[str]]] = [
    ("docworkers status", ["status"]),
    ("docworkers jobs list", ["jobs", "list"]),
    ("docworkers stats", ["stats"]),
    ("docworkers documents list", ["documents", "list"]),
    ("docworkers collections list", ["collections", "list"]),
    ("docworkers ingest FILE --no-wait", ["ingest", "docs/handbook-1p.docx", "--no-wait"]),
    ("docworkers search QUERY (loads the model)", ["search", "standing trustee"]),
]


def run(folder: Path, env: dict[str, str], args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([DOCWORKERS, *args], cwd=folder, env=env, capture_output=True,
                          check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"docworkers {' '.join(args)} failed:\n{done.stderr.decode()}")
    return elapsed


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, float, float]:
    values = [measure() for _ in range(runs)]
    return statistics.median(values), min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCWORKERS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    folder = Path(tempfile.mkdtemp(prefix="docworkers-stack-bench-"))
    shutil.copytree(SAMPLE, folder / "docs")
    stack = LocalStack(folder / ".docworkers")
    rows: list[tuple[str, tuple[float, float, float]]] = []
    try:
        def cold(argv: list[str]) -> Callable[[], float]:
            def measure() -> float:
                stack.down()
                return run(folder, env, argv)
            return measure

        def cold_server(name: str) -> Callable[[], float]:
            def measure() -> float:
                stack.down()
                start = time.perf_counter()
                stack.url(name)
                return time.perf_counter() - start
            return measure

        rows.append(("valkey start (LocalStack.url)", median_of(args.runs, cold_server("redis"))))
        rows.append(("chroma run start (LocalStack.url)",
                     median_of(args.runs, cold_server("chroma"))))
        rows.append(("cold: docworkers up (both servers)", median_of(args.runs, cold(["up"]))))
        rows.append(("cold: docworkers jobs list (starts valkey)",
                     median_of(args.runs, cold(["jobs", "list"]))))
        stack.up()
        run(folder, env, ["ingest", "docs/"])  # something to list and search
        for label, argv in WARM:
            run(folder, env, argv)
            timing = median_of(args.runs, lambda a=argv: run(folder, env, a))
            rows.append((f"warm: {label}", timing))
        time.sleep(2)
        memory = {s.name: s.memory_mb for s in stack.status()}
        data = {s.name: s.data_bytes for s in stack.status()}
    finally:
        stack.down()
        shutil.rmtree(folder, ignore_errors=True)

    load = os.getloadavg()
    print(f"\nLocal stack, median of {args.runs} runs (load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores)\n")
    print(f"| {'what':<52} | median s | min s | max s |")
    print(f"|{'-' * 54}|----------|-------|-------|")
    for label, (median, fastest, slowest) in rows:
        print(f"| {label:<52} | {median:8.2f} | {fastest:5.2f} | {slowest:5.2f} |")
    print("\n| server | idle RSS (MiB) | data after 5 sample documents |")
    print("|---|---|---|")
    for name in ("redis", "chroma"):
        rss = memory.get(name)
        print(f"| {name} | {rss:.0f} | {data[name] / 1024:.0f} KiB |" if rss is not None
              else f"| {name} | ? | ? |")


if __name__ == "__main__":
    main()
