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
* *raw model*: ``OnnxMiniLMEmbedder.embed`` (same int8 MiniLM, same onnxruntime threads and
  batches at once, its default batching) on exactly the texts the pipeline embeds: the chunks
  of each document as the pipeline makes them, a text repeated within a document once (the
  pipeline embeds it once), length-sorted in one call. Its model is loaded and warm before it
  is timed.

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
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _ingest_harness import CommandRun, corpus_dir, load, quiet_logs, run_ingest_command

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
STAGE_CPU = [sys.executable, str(Path(__file__).with_name("_stage_cpu.py"))]
MEMORY_TARGET_MB = 600


def embedded_texts(paths: Sequence[Path]) -> tuple[list[str], int]:
    """What the pipeline embeds of ``paths`` at the default settings: the distinct chunk texts
    (a text repeated within a document is embedded once, see ``stages.embed_chunks``; one
    repeated across documents is found in the embedding cache, unless both documents embed it
    at the same moment), and the most it may embed (each document's distinct texts)."""
    texts: list[str] = []
    for path in paths:
        chunks = chunk_document(parse_document(path))
        texts.extend(dict.fromkeys(chunk.text for chunk in chunks))
    return list(dict.fromkeys(texts)), len(texts)


def model_tokens(texts: Sequence[str]) -> int:
    """Tokens the model reads for ``texts``: truncated at the window, [CLS] and [SEP] added."""
    return sum(min(count_tokens(t), MAX_TEXT_TOKENS) + SPECIAL_TOKENS_PER_INPUT for t in texts)


def redis_cpu(server: EmbeddedRedis) -> float:
    if server.process is None:
        return 0.0
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        "embedding: the model (every thread running batches)":
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
    full = marks.get("model_full", 0.0)
    lines.append("")
    lines.append(
        f"wall {wall:.1f} s; the model computed during {busy:.1f} s of it ({busy / wall:.1%}), "
        f"with a batch on every core during {full:.1f} s ({full / wall:.1%}); its first batch "
        f"began {marks.get('model_first', 0.0):.1f} s after the start, its last ended "
        f"{wall - marks.get('model_last', wall):.1f} s before the exit")
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
        texts, most = embedded_texts(paths)
        tokens = model_tokens(texts)
        embedder = OnnxMiniLMEmbedder()  # the command's model: one batch per CPU at once
        embedder.embed(texts[:64])  # warm

        raws: list[RawRun] = []
        pipes: list[CommandRun] = []
        for round_ in range(args.rounds):
            sides = ["raw", "pipeline"] if round_ % 2 == 0 else ["pipeline", "raw"]
            for side in sides:
                if side == "raw":
                    raws.append(run_raw(embedder, texts))
                else:
                    pipes.append(run_ingest_command(folder, root / "work", server.url))
                    if not len(texts) <= pipes[-1].embedded <= most:
                        raise RuntimeError(f"the pipeline embedded {pipes[-1].embedded} texts, "
                                           f"expected {len(texts)} to {most}")
        stages: list[str] = []
        if not args.no_stages:
            report_path = root / "stages.json"
            before = redis_cpu(server)
            profiled = run_ingest_command(folder, root / "work", server.url,
                                          command=[*STAGE_CPU, str(report_path)])
            stages = stage_table(json.loads(report_path.read_text()),
                                 redis_cpu(server) - before, profiled.seconds)
            stages.insert(0, f"stage CPU of one more run ({profiled.seconds:.1f} s, "
                             f"{profiled.note}):")

    raw, pipe = min(raws, key=lambda r: r.seconds), min(pipes, key=lambda r: r.seconds)
    embedded = sorted({p.embedded for p in pipes})
    print(f"{len(names)} documents: {pipe.chunks} chunks stored, {len(texts)} distinct texts "
          f"embedded by the raw model ({most - len(texts)} more repeat a text of another "
          f"document; the pipeline embedded {'/'.join(map(str, embedded))}, credited with "
          f"{len(texts)}), {tokens:,} model tokens ({tokens / len(texts):.0f}/text); "
          f"{os.cpu_count()} CPUs, onnxruntime intra-op threads {embedder.intra_op_threads}, "
          f"{embedder.parallel_batches} batches at once; "
          f"best of {args.rounds}")
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
    # Each round's two sides ran back to back, so they met similar load from other processes;
    # CPU time hardly depends on that load, so its ratio is the steadier one on a shared box.
    rounds = ", ".join(f"{r.seconds / p.seconds:.2f}" for r, p in zip(raws, pipes, strict=True))
    cpu = min(r.cpu_seconds for r in raws) / min(p.cpu_seconds for p in pipes)
    print(f"same-round ratios: {rounds}; by CPU time (raw / command and its children): "
          f"{cpu:.3f}")
    print()
    worst = max(pipes, key=lambda p: p.memory.bound)
    print(f"peak RSS of the command's whole process tree (the worst of {len(pipes)} runs): "
          f"{worst.memory.largest_sum:.0f} MB (largest sum at one moment, sampled every "
          f"0.2 s), at most {worst.memory.bound:.0f} MB (sum of the processes' own peaks "
          f"within one sampling interval); target <= {MEMORY_TARGET_MB} MB")
    print("\n".join(worst.memory.lines()))
    if stages:
        print()
        print("\n".join(stages))


if __name__ == "__main__":
    main()
