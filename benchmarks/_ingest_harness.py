"""What the ingest benchmarks share: the corpus location, a real upload worker to feed, and the
``docworkers ingest --wait`` command run in a fresh process with its memory watched.

:class:`IngestHarness` is the world of one UploadWorker process: a private Redis
(:class:`EmbeddedRedis`), the job and document repositories, embedded Chroma in a temporary
folder, and :class:`DocumentServices` around a given embedder. :meth:`IngestHarness.ingest`
enqueues ``document_upload`` jobs and times them from the first enqueue to the last completion,
with the worker already running (a worker in production is started once, not per batch).

:func:`run_ingest_command` runs the command as a user does, start-up included, on a private
Redis and a new embedded Chroma folder, and samples the memory of its whole process tree (the
command, its parser child, anything else it starts) with :class:`TreeMemory`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis.asyncio as aioredis

from docworkers.embedded import EmbeddedRedis
from docworkers.ingest.document_repository import DocumentRepository
from docworkers.ingest.embedding import Embedder
from docworkers.ingest.embedding_batcher import BatcherStats
from docworkers.ingest.parsing import IsolatedParser
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.pipeline import DocumentServices
from docworkers.ingest.stage_limits import DEFAULT_STAGE_LIMITS, StageLimits
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.ingest.vector_store import ChromaVectorRepository
from docworkers.queue import Job, JobSpec, JobStatus, RedisJobRepository, RepositoryConfig
from docworkers.workers import WorkerConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
QUEUE = "bench-ingest"
COMMAND = [str(Path(sys.executable).with_name("docworkers"))]
SAMPLE_SECONDS = 0.2


def corpus_dir(option: str | None) -> Path:
    """The corpus given on the command line, else ``../shared/corpus`` from the repo root."""
    path = Path(option).expanduser().resolve() if option else DEFAULT_CORPUS
    if not path.is_dir():
        raise SystemExit(f"corpus not found at {path}; pass --corpus DIR")
    return path


def quiet_logs() -> None:
    """The worker logs every job at INFO; a benchmark table should not drown in them."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("docworkers", "docworkers.worker", "chromadb"):
        logging.getLogger(name).setLevel(logging.WARNING)


def upload_payload(path: Path, collection: str, **fields: Any) -> dict[str, Any]:
    return {"filename": path.name, "file_path": str(path), "file_size": path.stat().st_size,
            "collection": collection, **fields}


@dataclass(slots=True)
class IngestRun:
    """The outcome of one :meth:`IngestHarness.ingest` call."""

    jobs: list[Job]
    seconds: float  # first enqueue -> last job terminal
    batcher: BatcherStats  # model counters of this run only
    failed: list[Job] = field(default_factory=list)

    @property
    def chunks(self) -> int:
        return sum(int(job.result["chunk_count"]) for job in self.jobs
                   if job.status == JobStatus.COMPLETED)

    def stage_seconds(self) -> dict[str, float]:
        """Per-stage time summed over jobs (overlapping jobs make this exceed wall time)."""
        totals: dict[str, float] = {}
        for job in self.jobs:
            if job.status != JobStatus.COMPLETED:
                continue
            for stage, ms in job.result.get("timings_ms", {}).items():
                totals[stage] = totals.get(stage, 0.0) + ms / 1000
        return totals


class IngestHarness:
    """One in-process UploadWorker on private Redis and temporary Chroma (``async with``)."""

    def __init__(self, embedder: Embedder, *, concurrency: int = 4, parser_size: int = 1,
                 workdir: Path | None = None,
                 limits: StageLimits = DEFAULT_STAGE_LIMITS) -> None:
        self.embedder = embedder
        self.limits = limits
        self.concurrency = concurrency
        self.parser_size = parser_size
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="docworkers-bench-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.storage = workdir / "uploads"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.redis = EmbeddedRedis()
        self.jobs: RedisJobRepository
        self.documents: DocumentRepository
        self.vectors: ChromaVectorRepository
        self.services: DocumentServices
        self.worker: UploadWorker

    async def __aenter__(self) -> Self:
        url = self.redis.start()
        self.jobs = RedisJobRepository.from_url(url, RepositoryConfig(queue=QUEUE))
        self.documents = DocumentRepository(aioredis.Redis.from_url(url, decode_responses=True))
        self.vectors = ChromaVectorRepository.from_path(self.workdir / "chroma")
        self.services = DocumentServices.local(
            self.embedder, parser=IsolatedParser(size=self.parser_size), limits=self.limits)
        self.worker = UploadWorker(UploadWorkerConfig(
            worker=WorkerConfig(worker_name="bench-upload", concurrency=self.concurrency,
                                retry_delay=0.0, max_retries=0, log_level="WARNING"),
            job_repo=self.jobs, document_repo=self.documents, vector_repo=self.vectors,
            services=self.services,
        ))
        await self.worker.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.worker.stop()
        await self.services.aclose()
        self.vectors.close()
        await self.documents.client.aclose()
        await self.jobs.close()
        self.redis.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def warm_up(self, path: Path, collection: str) -> None:
        """Start every parser child, then run one small job so the collection exists."""
        await asyncio.gather(*(self.services.parser.aparse(path)
                               for _ in range(self.parser_size)))
        run = await self.ingest([upload_payload(path, collection)])
        if run.failed:
            raise RuntimeError(f"warm-up failed: {run.failed[0].error}")

    async def ingest(self, payloads: Sequence[dict[str, Any]], *,
                     poll: float = 0.25, timeout: float = 3600.0) -> IngestRun:
        """Enqueue every payload, wait until all are terminal; time first enqueue -> last end.

        The end is the latest ``completed_at`` the jobs carry (Redis's clock, same host, ms),
        so polling can be slow: a fast poll would itself take CPU from the worker.
        """
        before = self.services.batcher.stats
        started = time.time()
        ids = await self.jobs.enqueue_many(JobSpec(UPLOAD_JOB_TYPE, p) for p in payloads)
        deadline = time.monotonic() + timeout
        while True:
            jobs = await self.jobs.get_jobs(ids)
            if all(job.is_terminal for job in jobs):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"ingest did not finish within {timeout:.0f} s")
            await asyncio.sleep(poll)
        ends = [job.completed_at.timestamp() for job in jobs if job.completed_at is not None]
        seconds = (max(ends) if ends else time.time()) - started
        after = self.services.batcher.stats
        delta = BatcherStats(
            requests=after.requests - before.requests, texts=after.texts - before.texts,
            batches=after.batches - before.batches,
            failed_batches=after.failed_batches - before.failed_batches,
            busy_seconds=after.busy_seconds - before.busy_seconds,
        )
        failed = [job for job in jobs if job.status != JobStatus.COMPLETED]
        return IngestRun(jobs=jobs, seconds=seconds, batcher=delta, failed=failed)


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


@dataclass(slots=True)
class TreeMemory:
    """Memory of a process and its descendants, sampled from /proc every SAMPLE_SECONDS.

    ``largest_sum``: the largest sum of the live processes' RSS at one sampled moment (the
    tree's peak, unless a spike fell between two samples). ``bound``: the largest sum, over the
    interval between two samples, of each process's own peak (VmHWM) within that interval: an
    upper bound of the tree's peak that no spike escapes (but one in the instant between a
    process's read and its reset). After each read a process's peak is
    reset to its current RSS (``/proc/PID/clear_refs``, value 5, which changes nothing else), so
    a peak counts only in the interval it happened in: a bound of the processes' peaks over their
    whole lives added up peaks minutes apart (a parser child's largest document, the command's
    busiest moment) and said 599 or 664 MB where the sampled sum was 537 MB.
    """

    root: int
    peaks: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (name, VmHWM)
    largest_sum: float = 0.0
    bound: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_SECONDS)

    def sample(self) -> None:
        total = bound = 0.0
        for pid in tree(self.root):
            hwm, rss = status_mb(pid, "VmHWM"), status_mb(pid, "VmRSS")
            if hwm is None or rss is None:
                continue
            reset_peak(pid)
            total += rss
            bound += hwm
            name = self.peaks[pid][0] if pid in self.peaks else process_name(pid, self.root)
            self.peaks[pid] = (name, max(self.peaks.get(pid, ("", 0.0))[1], hwm))
        self.largest_sum = max(self.largest_sum, total)
        self.bound = max(self.bound, bound)

    def stop(self) -> None:
        self._stop.set()

    def lines(self) -> list[str]:
        return [f"  {name}: peak {mb:.0f} MB" for name, mb in self.peaks.values()]


def tree(root: int) -> list[int]:
    """``root`` and its live descendants, from /proc/<pid>/task/<tid>/children."""
    found, index = [root], 0
    while index < len(found):
        try:
            for entry in os.scandir(f"/proc/{found[index]}/task"):
                with open(f"{entry.path}/children") as handle:
                    found.extend(int(pid) for pid in handle.read().split())
        except OSError:
            pass
        index += 1
    return found


def process_name(pid: int, root: int) -> str:
    if pid == root:
        return "the command"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    text = " ".join(part.decode(errors="replace") for part in argv[1:4])
    if "spawn_main" in text:
        return "parser child"
    if "resource_tracker" in text:
        return "multiprocessing's resource tracker"
    if "tesseract" in argv[0].decode(errors="replace") or "stdout -l" in text:
        return "tesseract (OCR of a page, started by the parser child)"
    return text[:50]


def reset_peak(pid: int) -> None:
    """Set the process's VmHWM to its current RSS (a process that just ended is skipped)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def status_mb(pid: int | str, name: str) -> float | None:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM) in MB; None if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass(slots=True)
class CommandRun:
    """One run of ``docworkers ingest --wait``."""

    seconds: float  # start of the process -> its exit
    cpu_seconds: float  # the command and its reaped children
    memory: TreeMemory
    chunks: int
    embedded: int  # texts the pipeline's model embedded (embedding cache misses)
    note: str  # the load average when it started


def run_ingest_command(folder: Path, workdir: Path, redis_url: str, *,
                       command: Sequence[str] = COMMAND,
                       extra: Sequence[str] = ()) -> CommandRun:
    """``command ingest FOLDER --wait`` in a fresh process on an emptied Redis (``redis_url``,
    the embedding cache included) and a new embedded Chroma folder under ``workdir``."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    env = {**os.environ, "DOCWORKERS_REDIS_URL": redis_url,
           "DOCWORKERS_CHROMA_PATH": str(workdir / "chroma"),
           "DOCWORKERS_HOME": str(workdir / "home"),
           "DOCWORKERS_STORAGE_DIR": str(workdir / "uploads")}
    note = load()
    started = time.perf_counter()
    proc = subprocess.Popen([*command, "ingest", str(folder), "--wait", "--collection", "bench",
                             *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=workdir)
    memory = TreeMemory(proc.pid)
    sampler = threading.Thread(target=memory.run, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    memory.stop()
    sampler.join()
    # The command's own peak: its last moments may fall between two samples.
    name, sampled = memory.peaks.get(proc.pid, ("the command", 0.0))
    memory.peaks[proc.pid] = (name, max(sampled, usage.ru_maxrss / 1024))
    if proc.returncode != 0:
        raise RuntimeError(f"docworkers ingest failed ({proc.returncode}):\n"
                           + output.decode(errors="replace")[-3000:])
    chunks, embedded = asyncio.run(_job_counts(redis_url))
    return CommandRun(seconds, usage.ru_utime + usage.ru_stime, memory, chunks, embedded, note)


async def _job_counts(url: str) -> tuple[int, int]:
    """Chunks stored and texts embedded (cache misses) over the upload jobs on ``url``."""
    from docworkers.queue.filters import JobFilter

    jobs_repo = RedisJobRepository.from_url(url, RepositoryConfig(queue="default"))
    try:
        jobs = await jobs_repo.list_jobs(JobFilter(types=frozenset({UPLOAD_JOB_TYPE}),
                                                   limit=10_000))
    finally:
        await jobs_repo.close()
    failed = [job for job in jobs if job.status != JobStatus.COMPLETED]
    if failed or not jobs:
        raise RuntimeError(f"{len(failed)} of {len(jobs)} upload job(s) did not complete"
                           + (f": {failed[0].error}" if failed else ""))
    chunks = sum(int(job.result["chunk_count"]) for job in jobs)
    misses = sum(int(job.result.get("embedding_cache", {}).get("misses", 0)) for job in jobs)
    return chunks, misses
