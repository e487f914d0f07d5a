"""Ingest throughput: ``docworkers ingest --wait`` versus the raw model on the texts it embeds.

Run from the repository root:

    .venv/bin/python benchmarks/ingest_throughput.py [--quick] [--corpus DIR] [--rounds N]
        [--threads N] [--no-stages]

On a fixed set of varied corpus documents (no trap files), in one run:

* *pipeline*: the command ``docworkers ingest FOLDER --wait`` in a fresh process, timed from
  its start to its exit, start-up included (imports, the model, Chroma, the parser child). It
  processes the documents itself (no worker is running), on a private Redis (emptied before
  each run, so the embedding cache starts empty) and an embedded Chroma in a new folder. The
  peak memory of its whole process tree (the command and every process it starts) is sampled.
* *raw model*: ``OnnxMiniLMEmbedder.embed`` (same int8 MiniLM, same onnxruntime threads, its
  default batching) on exactly the texts the pipeline embeds: the chunks of each document as
  the pipeline makes them, a text repeated within a document once (the pipeline embeds it
  once), length-sorted in one call. Its model is loaded and warm before it is timed.

Both sides are credited with the same tokens (each embedded text's tokens, truncated at the
window, plus [CLS] and [SEP]), so tokens/s compare like with like; the pipeline's own cache
counters are checked to say it embedded exactly that many texts. Rounds alternate which side
runs first, and the best of each side is kept (load from other processes on a shared machine
only slows a run down; the load average is printed with each run).

A last, separate run of the command (``--no-stages`` skips it) counts each stage's CPU time
(not wall time) with ``benchmarks/_stage_cpu.py``: parsing (the parser child), chunking,
tokenising, the model, Chroma, the keyword index, the event loop (Redis, the worker), the
Redis server, start-up; and how long the model sat idle.
"""

from __future__ import annotations

import argparse
import json
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
from typing import Any

from _ingest_harness import corpus_dir, quiet_logs

from docworkers.embedded import EmbeddedRedis
from docworkers.ingest.chunking import chunk_document
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.parsing import parse_document
from docworkers.ingest.tokenizer import MAX_TEXT_TOKENS, SPECIAL_TOKENS_PER_INPUT, count_tokens

# Varied real documents, a few thousand chunks in all (chunk counts at the default settings).
DOCUMENTS = [
    "pdf/pdf2image-memory-error-test-400p.pdf",  # 400 pages, ~530 chunks
    "pdf/pypdf_009-pdflatex-geotopo_GeoTopo-komprimiert.pdf",  # 117 pages, ~320
    "pdf/multi-column.pdf",  # 13 pages, ~60
    "pdf/reliance.pdf",
    "pdf/layout-parser-paper-fast.pdf",
    "pdf/a1977-backus-p21.pdf",
    "pdf/pypdf_026-latex-multicolumn_multicolumn.pdf",
    "docx/handbook-872p.docx",  # ~810 (454 of them repeat a text of the document)
    "docx/docx-tables.docx",
    "html/example-10k.html",  # SEC filing, ~280
    "html/fake-html-pre.htm",  # ~430
    "html/example-10k-1p.html",
    "text/norwich-city.txt",  # ~60
]
QUICK_DOCUMENTS = [
    "pdf/multi-column.pdf",
    "pdf/reliance.pdf",
    "pdf/layout-parser-paper-fast.pdf",
    "pdf/a1977-backus-p21.pdf",
    "docx/docx-tables.docx",
    "html/example-10k-1p.html",
    "text/norwich-city.txt",
]
REPO_ROOT = Path(__file__).resolve().parents[1]
COMMAND = [str(Path(sys.executable).with_name("docworkers"))]
STAGE_CPU = [sys.executable, str(Path(__file__).with_name("_stage_cpu.py"))]
MEMORY_TARGET_MB = 600
SAMPLE_SECONDS = 0.25


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def embedded_texts(paths: Sequence[Path]) -> list[str]:
    """What the pipeline embeds of ``paths`` at the default settings: each document's chunk
    texts, a text repeated within the document once (``stages.embed_chunks``)."""
    texts: list[str] = []
    for path in paths:
        chunks = chunk_document(parse_document(path))
        texts.extend(dict.fromkeys(chunk.text for chunk in chunks))
    return texts


def model_tokens(texts: Sequence[str]) -> int:
    """Tokens the model reads for ``texts``: truncated at the window, [CLS] and [SEP] added."""
    return sum(min(count_tokens(t), MAX_TEXT_TOKENS) + SPECIAL_TOKENS_PER_INPUT for t in texts)


@dataclass(slots=True)
class TreeMemory:
    """Peak memory of a process and its descendants, sampled from /proc while it runs."""

    root: int
    peaks: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (name, VmHWM)
    largest_sum: float = 0.0  # the largest sum of the tree's VmRSS seen at one moment
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_SECONDS)

    def sample(self) -> None:
        total = 0.0
        for pid in tree(self.root):
            hwm, rss = status_mb(pid, "VmHWM"), status_mb(pid, "VmRSS")
            if hwm is None or rss is None:
                continue
            total += rss
            name = self.peaks[pid][0] if pid in self.peaks else process_name(pid, self.root)
            self.peaks[pid] = (name, max(self.peaks.get(pid, ("", 0.0))[1], hwm))
        self.largest_sum = max(self.largest_sum, total)

    def stop(self) -> None:
        self._stop.set()

    @property
    def tree_peak(self) -> float:
        """Sum of each process's own peak: an upper bound of the tree's peak."""
        return sum(mb for _, mb in self.peaks.values())


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
    return " ".join(part.decode(errors="replace") for part in argv[1:4])[:70]


def status_mb(pid: int, name: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass(slots=True)
class PipelineRun:
    seconds: float
    cpu_seconds: float  # the command and its reaped children
    memory: TreeMemory
    chunks: int
    embedded: int  # texts the pipeline's model embedded (embedding cache misses)
    note: str


def redis_cpu(server: EmbeddedRedis) -> float:
    if server.process is None:
        return 0.0
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_command(args: Sequence[str], folder: Path, workdir: Path,
                server: EmbeddedRedis) -> PipelineRun:
    """``args`` (a docworkers command line) on ``folder``, in a fresh process, on an emptied
    Redis and a new Chroma folder; its wall time, CPU, peak memory and job results."""
    import redis

    client = redis.Redis.from_url(server.url)
    client.flushall()
    shutil.rmtree(workdir, ignore_errors=True)
    env = {**os.environ, "DOCWORKERS_REDIS_URL": server.url,
           "DOCWORKERS_CHROMA_PATH": str(workdir / "chroma"),
           "DOCWORKERS_HOME": str(workdir / "home"),
           "DOCWORKERS_STORAGE_DIR": str(workdir / "uploads")}
    note = load()
    started = time.perf_counter()
    proc = subprocess.Popen([*args, "ingest", str(folder), "--wait", "--collection", "bench"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=workdir.parent)
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
    # The command's own peak (its last moments may fall between two samples).
    name, sampled = memory.peaks.get(proc.pid, ("command", 0.0))
    memory.peaks[proc.pid] = (name, max(sampled, usage.ru_maxrss / 1024))
    if proc.returncode != 0:
        raise RuntimeError(f"docworkers ingest failed ({proc.returncode}):\n"
                           + output.decode(errors="replace")[-3000:])
    chunks, embedded = job_counts(server.url)
    client.close()
    return PipelineRun(seconds, usage.ru_utime + usage.ru_stime, memory, chunks, embedded,
                       note)


def job_counts(url: str) -> tuple[int, int]:
    """Chunks stored and texts embedded (cache misses) over the upload jobs on ``url``."""
    import asyncio

    from docworkers.ingest.jobs.kinds import UPLOAD_JOB_TYPE
    from docworkers.queue import JobStatus
    from docworkers.queue.filters import JobFilter
    from docworkers.runtime import Runtime
    from docworkers.settings import Settings

    async def read() -> tuple[int, int]:
        runtime = Runtime(Settings.from_env({"DOCWORKERS_REDIS_URL": url}, env_file=None))
        try:
            await runtime.open()
            jobs = await runtime.queues.for_type(UPLOAD_JOB_TYPE).list_jobs(
                JobFilter(limit=10_000))
        finally:
            await runtime.close()
        failed = [job for job in jobs if job.status != JobStatus.COMPLETED]
        if failed:
            raise RuntimeError(f"{len(failed)} upload job(s) did not complete: {failed[0].error}")
        chunks = sum(int(job.result["chunk_count"]) for job in jobs)
        misses = sum(int(job.result.get("embedding_cache", {}).get("misses", 0)) for job in jobs)
        return chunks, misses

    return asyncio.run(read())


@dataclass(slots=True)
class RawRun:
    seconds: float
    cpu_seconds: float
    note: str


def run_raw(embedder: OnnxMiniLMEmbedder, texts: list[str]) -> RawRun:
    note = load()
    cpu, started = time.process_time(), time.perf_counter()
    embedder.embed(texts)
    return RawRun(time.perf_counter() - started, time.process_time() - cpu, note)


def stage_table(report: dict[str, Any], redis_seconds: float, wall: float) -> list[str]:
    """Each stage's CPU seconds and share of the total, from a _stage_cpu.py report."""
    stages: dict[str, float] = {name: seconds for name, seconds in report["stages"].items()
                                if not name.startswith("start-up")}
    threads: dict[str, float] = dict(report["threads"])
    marks: dict[str, float] = report["marks"]
    startup = marks.get("first_job_cpu", 0.0)  # the whole process's CPU before the first job
    main_thread = threads.pop("python: MainThread", 0.0)
    other_python = sum(v for k, v in threads.items() if k.startswith("python: "))
    rows = {
        "parsing (the parser child process)": report["children_cpu"],
        "start-up, until the first job (imports, model, Chroma)": startup,
        "embedding: the model (onnxruntime, all its threads)":
            stages.pop("embedding: model (calling thread)", 0.0)
            + threads.pop("onnxruntime pool threads", 0.0),
    }
    rows.update(sorted(stages.items()))
    rows["tokenizers' thread pool (chunking and embedding)"] = \
        threads.pop("tokenizers' thread pool", 0.0)
    rows["Chroma's own threads (index inserts, persistence)"] = \
        threads.pop("Chroma's threads", 0.0)
    rows["event loop: worker, Redis client, progress board, exit"] = \
        max(0.0, main_thread - startup)
    rows["Redis server (another process, same cores)"] = redis_seconds
    # Python threads' CPU outside the wrapped stages: hashing the file, hand-offs, the sampler.
    wrapped = sum(stages.values()) + report["stages"].get("embedding: model (calling thread)", 0)
    rows["other Python threads (file hashing, thread hand-offs, sampler)"] = \
        max(0.0, other_python - wrapped)
    rows["other native threads"] = threads.pop("other native threads", 0.0)
    total = report["process_cpu"] + report["children_cpu"] + redis_seconds
    rows["unattributed (threads that ended between samples)"] = \
        max(0.0, total - sum(rows.values()))
    lines = [f"| {'stage (CPU, not wall)':<62} | {'CPU s':>7} | {'share':>6} |",
             f"|{'-' * 64}|{'-' * 9}|{'-' * 8}|"]
    for name, seconds in rows.items():
        lines.append(f"| {name:<62} | {seconds:>7.1f} | {seconds / total:>6.1%} |")
    lines.append(f"| {'total (command + parser child + Redis server)':<62} | {total:>7.1f} | "
                 f"{1:>6.0%} |")
    busy = marks.get("model_busy", 0.0)
    lines.append("")
    lines.append(
        f"wall {wall:.1f} s; the model computed during {busy:.1f} s of it ({busy / wall:.1%}); "
        f"its first call began {marks.get('model_first', 0.0):.1f} s after the start, its last "
        f"ended {wall - marks.get('model_last', wall):.1f} s before the exit")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few small documents")
    parser.add_argument("--corpus", help="corpus folder (default: ../shared/corpus)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of (raw, pipeline), alternating which goes first")
    parser.add_argument("--no-stages", action="store_true",
                        help="skip the extra run that counts each stage's CPU")
    args = parser.parse_args()
    quiet_logs()
    corpus = corpus_dir(args.corpus)
    names = QUICK_DOCUMENTS if args.quick else DOCUMENTS

    with tempfile.TemporaryDirectory(prefix="docworkers-bench-") as tmp, EmbeddedRedis() as server:
        root = Path(tmp)
        folder = root / "documents"
        folder.mkdir()
        paths = []
        for name in names:
            paths.append(folder / Path(name).name)
            shutil.copy(corpus / name, paths[-1])
        texts = embedded_texts(paths)
        tokens = model_tokens(texts)
        embedder = OnnxMiniLMEmbedder()  # the command's model: one onnxruntime thread per CPU
        embedder.embed(texts[:64])  # warm

        raws: list[RawRun] = []
        pipes: list[PipelineRun] = []
        for round_ in range(args.rounds):
            sides = ["raw", "pipeline"] if round_ % 2 == 0 else ["pipeline", "raw"]
            for side in sides:
                if side == "raw":
                    raws.append(run_raw(embedder, texts))
                else:
                    pipes.append(run_command(COMMAND, folder, root / "work", server))
                    if pipes[-1].embedded != len(texts):
                        raise RuntimeError(f"the pipeline embedded {pipes[-1].embedded} texts, "
                                           f"the raw model {len(texts)}")
        stages: list[str] = []
        if not args.no_stages:
            report_path = root / "stages.json"
            before = redis_cpu(server)
            profiled = run_command([*STAGE_CPU, str(report_path)], folder, root / "work",
                                   server)
            stages = stage_table(json.loads(report_path.read_text()),
                                 redis_cpu(server) - before, profiled.seconds)
            stages.insert(0, f"stage CPU of one more run ({profiled.seconds:.1f} s, "
                             f"{profiled.note}):")

    raw, pipe = min(raws, key=lambda r: r.seconds), min(pipes, key=lambda r: r.seconds)
    print(f"{len(names)} documents: {pipe.chunks} chunks stored, {len(texts)} texts embedded "
          f"({pipe.chunks - len(texts)} repeat a text of their document), {tokens:,} model "
          f"tokens ({tokens / len(texts):.0f}/text); {os.cpu_count()} CPUs, onnxruntime "
          f"intra-op threads {embedder.intra_op_threads}; best of {args.rounds}")
    print()
    print(f"| {'side':<44} | {'seconds':>7} | {'tokens/s':>8} | {'vs raw':>6} | {'CPU s':>6} "
          f"| note")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 10}|{'-' * 8}|{'-' * 8}|------")
    print(f"| {'raw model, length-sorted, warm':<44} | {raw.seconds:>7.1f} | "
          f"{tokens / raw.seconds:>8,.0f} | {1:>6.2f} | {raw.cpu_seconds:>6.1f} | {raw.note}")
    print(f"| {'docworkers ingest --wait (start-up included)':<44} | {pipe.seconds:>7.1f} | "
          f"{tokens / pipe.seconds:>8,.0f} | {raw.seconds / pipe.seconds:>6.2f} | "
          f"{pipe.cpu_seconds:>6.1f} | {pipe.note}")
    print()
    print("every run (s): raw " + ", ".join(f"{r.seconds:.1f} ({r.note})" for r in raws)
          + "; pipeline " + ", ".join(f"{p.seconds:.1f} ({p.note})" for p in pipes))
    print(f"end to end / raw model = {raw.seconds / pipe.seconds:.3f} (target >= 0.92)")
    print()
    worst = max(pipes, key=lambda p: p.memory.tree_peak)
    print(f"peak memory of the command's process tree (largest of {len(pipes)} runs): "
          f"{worst.memory.tree_peak:.0f} MB as the sum of each process's peak, "
          f"{worst.memory.largest_sum:.0f} MB the largest sum at one moment "
          f"(target <= {MEMORY_TARGET_MB} MB):")
    for name, mb in worst.memory.peaks.values():
        print(f"  {name}: {mb:.0f} MB")
    if stages:
        print()
        print("\n".join(stages))


if __name__ == "__main__":
    main()
