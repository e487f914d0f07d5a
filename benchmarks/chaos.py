"""Chaos run: real worker processes, a real Redis and a real Chroma server, under fire.

While upload jobs and thousands of no-op jobs run, this script SIGKILLs random worker
processes (and restarts them), SIGSTOPs one past its lease then SIGCONTs it, restarts Redis
(append-only persistence on) and takes Chroma away for a while. At the end it checks the
invariants: every job reached a terminal state, none is lost, none completed twice, every
completed document has exactly its chunks in Chroma, and the failed ones are the bad inputs.

    .venv/bin/python benchmarks/chaos.py [--workers 3] [--noop-jobs 3000] [--docs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from docworkers.embedded import EmbeddedRedis
from docworkers.errors import RepositoryError
from docworkers.ingest.chroma_server import ChromaServer
from docworkers.ingest.document_repository import DocumentRepository, DocumentStatus
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.queue import JobSpec, JobStatus, RedisJobRepository, RepositoryConfig

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).parent


def make_documents(folder: Path, corpus: Path, count: int) -> dict[str, str | None]:
    """Distinct small text documents cut from War and Peace, plus bad inputs.

    Returns file name -> expected error code (None for good documents)."""
    text = (corpus / "text" / "book-war-and-peace-1225p.txt").read_text(encoding="utf-8")
    expected: dict[str, str | None] = {}
    step = 6_000
    for i in range(count):
        name = f"chapter-{i:04d}.txt"
        (folder / name).write_text(text[i * step : (i + 1) * step], encoding="utf-8")
        expected[name] = None
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(4000))
    expected["broken.pdf"] = "corrupt"
    shutil.copy(corpus / "pdf" / "password.pdf", folder / "password.pdf")
    expected["password.pdf"] = "encrypted"
    (folder / "empty.txt").write_bytes(b"")
    expected["empty.txt"] = "empty"
    return expected


class Fleet:
    """The worker processes, restartable by name."""

    def __init__(self, env: dict[str, str], size: int) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills = 0
        for i in range(size):
            self.spawn(f"w{i}")

    def spawn(self, name: str) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, str(HERE / "_chaos_worker.py"), name],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill_random(self, rng: random.Random) -> None:
        name = rng.choice(sorted(self.procs))
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()
        self.kills += 1
        self.spawn(name)

    def pause(self, name: str, seconds: float) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="docworkers-chaos-"))
    redis_server = EmbeddedRedis(base_dir=work / "redis", appendonly=True)
    redis_url = redis_server.start()
    chroma = ChromaServer(work / "chroma")
    chroma_url = chroma.start()
    docs = work / "docs"
    docs.mkdir()
    expected = make_documents(docs, Path(args.corpus), args.docs)
    env = {
        **os.environ,
        "DOCWORKERS_REDIS_URL": redis_url,
        "DOCWORKERS_CHROMA_URL": chroma_url,
        "DOCWORKERS_LEASE_TIMEOUT": str(args.lease),
        "DOCWORKERS_RETRY_DELAY": "0.5",
        "DOCWORKERS_MAX_RETRIES": "50",
        "DOCWORKERS_LOG_LEVEL": "WARNING",
        "DOCWORKERS_STORAGE_DIR": str(work / "storage"),
    }
    uploads = RedisJobRepository.from_url(redis_url)
    noops = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue="chaos-noop"))
    fleet = Fleet(env, args.workers)
    started = time.monotonic()
    upload_ids = await uploads.enqueue_many(
        JobSpec(
            UPLOAD_JOB_TYPE,
            {"filename": name, "file_path": str(docs / name), "collection": "chaos"},
            job_id=f"doc-{i}",
        )
        for i, name in enumerate(expected)
    )
    noop_ids = await noops.enqueue_many(
        JobSpec("noop", {"n": i, "sleep": rng.choice([0, 0.1, 0.5, 1.0])}, job_id=f"noop-{i}")
        for i in range(args.noop_jobs)
    )
    events: list[str] = []
    stall = 0.0
    deadline = started + args.duration
    step = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(2, 4))
        step += 1
        if step == 3:
            events.append(f"SIGSTOP w0 for {args.lease * 2:.0f}s (past its lease)")
            await asyncio.to_thread(fleet.pause, "w0", args.lease * 2)
        elif step == 5:
            events.append("Redis restarted (append-only file kept)")
            down = time.monotonic()
            redis_server.stop(keep_data=True)
            await asyncio.sleep(1.0)
            redis_server.start()
            probe = await noops.enqueue("noop", {"n": -1}, priority=1000)
            noop_ids.append(probe)
            while time.monotonic() - down < 120:
                try:
                    if (await noops.get_job(probe)).status == JobStatus.COMPLETED:
                        break
                except RepositoryError:
                    pass  # our own pooled connections died with the server: try again
                await asyncio.sleep(0.02)
            stall = time.monotonic() - down - 1.0  # minus the second Redis was down
        elif step == 7:
            events.append("Chroma stopped for 5 s")
            chroma.stop()
            await asyncio.sleep(5)
            chroma.start()
        else:
            fleet.kill_random(rng)
    events.append(f"{fleet.kills} SIGKILLs")

    async def all_terminal(repo: RedisJobRepository, ids: list[str]) -> list[object]:
        limit = time.monotonic() + args.drain_timeout
        while True:
            jobs = await repo.get_jobs(ids)
            if all(job.is_terminal for job in jobs) or time.monotonic() > limit:
                return list(jobs)
            await asyncio.sleep(0.5)

    upload_jobs = await all_terminal(uploads, upload_ids)
    noop_jobs = await all_terminal(noops, noop_ids)
    elapsed = time.monotonic() - started
    fleet.stop()

    problems: list[str] = []
    if len(upload_jobs) != len(upload_ids) or len(noop_jobs) != len(noop_ids):
        problems.append("jobs LOST: fewer job records than enqueued")
    not_done = [j for j in [*upload_jobs, *noop_jobs] if not j.is_terminal]  # type: ignore[attr-defined]
    if not_done:
        problems.append(f"{len(not_done)} jobs not terminal")
    noop_stats = await noops.stats()
    completed_noops = sum(1 for j in noop_jobs if j.status == JobStatus.COMPLETED)  # type: ignore[attr-defined]
    if noop_stats.total_completed != completed_noops:
        problems.append(
            f"completions counted {noop_stats.total_completed} != completed jobs "
            f"{completed_noops} (a job completed twice?)"
        )
    documents = DocumentRepository(aioredis.Redis.from_url(redis_url, decode_responses=True))
    vectors = ChromaVectorRepository.from_url(chroma_url)
    checked = 0
    for i, name in enumerate(expected):
        job = next(j for j in upload_jobs if j.id == f"doc-{i}")  # type: ignore[attr-defined]
        code = expected[name]
        if code is None:
            if job.status != JobStatus.COMPLETED:
                problems.append(f"{name}: {job.status} {job.error}")
                continue
            document_id = job.result["document_id"]
            ids = vectors.document_chunk_ids("chaos", document_id)
            record = await documents.get(document_id)
            if len(ids) != len(set(ids)) or len(ids) != job.result["chunk_count"]:
                problems.append(
                    f"{name}: {len(ids)} chunks stored, {job.result['chunk_count']} expected"
                )
            if record is None or record.status != DocumentStatus.COMPLETED:
                problems.append(f"{name}: document record not completed")
            checked += 1
        elif (
            job.status != JobStatus.FAILED
            or job.error is None
            or job.error.code != code
            or job.retry_count
        ):
            problems.append(
                f"{name}: expected failed/{code} without retries, got {job.status} "
                f"{job.error and job.error.code} after {job.retry_count} retries"
            )
    total_chunks = sum(c.count for c in vectors.list_collections() if c.name == "chaos")
    expected_chunks = sum(
        j.result["chunk_count"]
        for j in upload_jobs  # type: ignore[attr-defined]
        if j.status == JobStatus.COMPLETED
    )  # type: ignore[attr-defined]
    if total_chunks != expected_chunks:
        problems.append(
            f"Chroma holds {total_chunks} chunks, completed documents have "
            f"{expected_chunks} (orphans or duplicates)"
        )
    retried = noop_stats.total_retried + (await uploads.stats()).total_retried
    print(
        f"\nchaos run: {len(upload_ids)} upload jobs + {len(noop_ids)} no-op jobs, "
        f"{args.workers} worker processes, {elapsed:.0f} s"
    )
    print("| event | detail |\n|---|---|")
    for event in events:
        print(f"| fault | {event} |")
    print(f"| Redis restart stall | {stall:.2f} s from server back to a new job completed |")
    print(f"| retries (lease expiries, outages) | {retried} |")
    print(f"| documents verified chunk by chunk | {checked} |")
    print(f"| chunks in Chroma / expected | {total_chunks} / {expected_chunks} |")
    print(f"| invariant violations | {len(problems)} |")
    for problem in problems[:20]:
        print("  -", problem)
    await uploads.close()
    await noops.close()
    await documents.client.aclose()
    vectors.close()
    chroma.stop()
    redis_server.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--noop-jobs", type=int, default=3000)
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of chaos")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    raise SystemExit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
