"""Ingest throughput: the model alone versus the whole upload pipeline, on the same chunks.

Run from the repository root:

    .venv/bin/python benchmarks/ingest_throughput.py [--quick] [--corpus DIR] [--repeat N]
        [--concurrency 4] [--parser-size 1] [--threads N]

On a fixed set of varied corpus documents (no trap files) it measures:

1. *parse*: ``parse_document`` over the PDFs in this process (pages/s).
2. *raw model*: ``OnnxMiniLMEmbedder.embed`` on exactly the chunks the pipeline produces (the
   same parser and chunker, default payload settings), length-sorted: with the embedder's
   default batching (at most 32 texts and 512 padded tokens per model call, so 2 full-length
   chunks) and in plain batches of 32 and 64 texts (``--raw-batches``).
3. *end to end*: every document enqueued as a ``document_upload`` job on a private Redis, one
   in-process UploadWorker (parser child processes, the batching embedder, Chroma in a
   temporary folder) already running; from the first enqueue to the last completion.

The ratio end-to-end / raw (best raw) says how much the pipeline costs on top of the model; the
model utilisation (time inside the model / wall time) says whether the model ever waited.
``--repeat`` interleaves raw and end-to-end runs and keeps the best of each, which filters out
load from other processes on a shared machine (the load average is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from _ingest_harness import IngestHarness, IngestRun, corpus_dir, quiet_logs, upload_payload

from docworkers.ingest.chunking import chunk_document
from docworkers.ingest.embedding import OnnxMiniLMEmbedder
from docworkers.ingest.parsing import parse_document
from docworkers.ingest.tokenizer import MAX_TEXT_TOKENS, count_tokens

# Varied real documents, a few thousand chunks in all (chunk counts at the default settings).
DOCUMENTS = [
    "pdf/pdf2image-memory-error-test-400p.pdf",  # 400 pages, ~530 chunks
    "pdf/pypdf_009-pdflatex-geotopo_GeoTopo-komprimiert.pdf",  # 117 pages, ~320
    "pdf/multi-column.pdf",  # 13 pages, ~60
    "pdf/reliance.pdf",
    "pdf/layout-parser-paper-fast.pdf",
    "pdf/a1977-backus-p21.pdf",
    "pdf/pypdf_026-latex-multicolumn_multicolumn.pdf",
    "docx/handbook-872p.docx",  # ~810
    "docx/docx-tables.docx",
    "html/example-10k.html",  # SEC filing, ~220
    "html/fake-html-pre.htm",  # ~430
    "html/example-10k-1p.html",
    "text/norwich-city.txt",  # ~60
]
QUICK_DOCUMENTS = [
    "pdf/multi-column.pdf",
    "pdf/reliance.pdf",
    "pdf/layout-parser-paper-fast.pdf",
    "pdf/a1977-backus-p21.pdf",
    "pdf/pypdf_026-latex-multicolumn_multicolumn.pdf",
    "docx/docx-tables.docx",
    "html/example-10k-1p.html",
    "text/norwich-city.txt",
]
WARM_UP = "pdf/interface-config-guide-p93.pdf"


@dataclass(slots=True)
class Row:
    name: str
    chunks: int
    seconds: float
    cpu_seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds


def children_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of live child processes (the parser children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measure_parse(paths: list[Path]) -> tuple[int, float]:
    pages, seconds = 0, 0.0
    for path in paths:
        started = time.perf_counter()
        doc = parse_document(path)
        seconds += time.perf_counter() - started
        pages += int(doc.metadata.get("page_count") or 0)
    return pages, seconds


def pipeline_chunks(paths: list[Path]) -> list[str]:
    """The chunk texts the pipeline makes of ``paths`` at the default payload settings."""
    texts: list[str] = []
    for path in paths:
        texts.extend(chunk.text for chunk in chunk_document(parse_document(path)))
    return texts


def raw_embedders(batches: list[int], threads: int | None) -> dict[str, OnnxMiniLMEmbedder]:
    """The embedder the pipeline uses (default batching) and plain batches of N texts."""
    embedders = {"raw model, default batching": OnnxMiniLMEmbedder(intra_op_threads=threads)}
    for size in batches:
        embedders[f"raw model, batches of {size}"] = OnnxMiniLMEmbedder(
            batch_size=size, max_batch_tokens=size * (MAX_TEXT_TOKENS + 2),
            intra_op_threads=threads)
    return embedders


def measure_raw(name: str, embedder: OnnxMiniLMEmbedder, texts: list[str]) -> Row:
    embedder.embed(texts[:64])  # warm up
    cpu, started = time.process_time(), time.perf_counter()
    embedder.embed(texts)
    seconds = time.perf_counter() - started
    return Row(name, len(texts), seconds, time.process_time() - cpu)


async def measure_e2e(harness: IngestHarness, payloads: list[dict[str, object]],
                      label: str) -> tuple[Row, IngestRun]:
    pids = harness.services.parser.pids
    cpu, child_cpu = time.process_time(), children_cpu(pids)
    run = await harness.ingest(payloads)
    used = time.process_time() - cpu + children_cpu(pids) - child_cpu
    if run.failed:
        raise RuntimeError(f"{len(run.failed)} job(s) failed: {run.failed[0].error}")
    utilisation = run.batcher.busy_seconds / run.seconds
    return Row(label, run.chunks, run.seconds, used,
               f"model busy {utilisation:.0%}, {run.batcher.batches} batches"), run


def print_table(rows: list[Row], reference: float) -> None:
    print(f"| {'measurement':<38} | {'chunks':>6} | {'seconds':>7} | {'chunks/s':>8} "
          f"| {'vs raw':>6} | {'CPU s':>6} | note")
    print(f"|{'-' * 40}|{'-' * 8}|{'-' * 9}|{'-' * 10}|{'-' * 8}|{'-' * 8}|------")
    for row in rows:
        print(f"| {row.name:<38} | {row.chunks:>6} | {row.seconds:>7.2f} | {row.rate:>8.1f} "
              f"| {row.rate / reference:>6.0%} | {row.cpu_seconds:>6.1f} | {row.note}")


async def main_async(args: argparse.Namespace) -> None:
    corpus = corpus_dir(args.corpus)
    names = QUICK_DOCUMENTS if args.quick else DOCUMENTS
    batches = [int(b) for b in args.raw_batches.split(",") if b.strip()]
    embedders = raw_embedders(batches, args.threads)
    pipeline_embedder = embedders["raw model, default batching"]

    async with IngestHarness(pipeline_embedder, concurrency=args.concurrency,
                             parser_size=args.parser_size) as harness:
        stored = []
        for name in names:  # the upload API stores files first; workers read the stored copy
            target = harness.storage / Path(name).name
            shutil.copy(corpus / name, target)
            stored.append(target)
        pdfs = [p for p in stored if p.suffix == ".pdf"]
        pages, parse_seconds = measure_parse(pdfs)
        texts = pipeline_chunks(stored)
        tokens = sum(count_tokens(text) + 2 for text in texts)  # with [CLS] and [SEP]
        await harness.warm_up(corpus / WARM_UP, "warmup")

        raws: dict[str, Row] = {}
        e2es: list[tuple[Row, IngestRun]] = []
        for attempt in range(args.repeat):
            for name, embedder in embedders.items():
                row = await asyncio.to_thread(measure_raw, name, embedder, texts)
                best = raws.get(name)
                if best is None or row.seconds < best.seconds:
                    raws[name] = row
            payloads = [upload_payload(p, f"bench-{attempt}") for p in stored]
            e2es.append(await measure_e2e(
                harness, payloads,
                f"end to end, concurrency {args.concurrency}, parsers {args.parser_size}"))
        best_row, best_run = min(e2es, key=lambda pair: pair[0].seconds)
        if best_row.chunks != len(texts):
            raise RuntimeError(f"the pipeline made {best_row.chunks} chunks, expected "
                               f"{len(texts)}")

    reference = max(row.rate for row in raws.values())
    print(f"{len(names)} documents, {len(texts)} chunks, {tokens} tokens "
          f"({tokens / len(texts):.0f}/chunk); {os.cpu_count()} CPUs, onnxruntime "
          f"intra-op threads {pipeline_embedder.intra_op_threads}; best of {args.repeat}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print()
    print_table([*raws.values(), best_row], reference)
    print()
    docs_per_min = len(names) / best_row.seconds * 60
    print(f"end to end: {docs_per_min:.1f} documents/min; e2e / best raw = "
          f"{best_row.rate / reference:.1%} (target >= 90%)")
    print(f"parse alone (parse_document, {len(pdfs)} PDFs, in process): {pages} pages in "
          f"{parse_seconds:.2f} s = {pages / parse_seconds:.0f} pages/s")
    stages = best_run.stage_seconds()
    print("stage time summed over jobs (s): "
          + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in stages.items()))
    if args.repeat > 1:
        print("all end-to-end runs (s): "
              + ", ".join(f"{row.seconds:.2f}" for row, _ in e2es))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few small documents")
    parser.add_argument("--corpus", help="corpus folder (default: ../shared/corpus)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind; best kept")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs the worker runs at once")
    parser.add_argument("--parser-size", type=int, default=1, help="parser child processes")
    parser.add_argument("--raw-batches", default="32,64",
                        help="plain batch sizes to time the model with (comma-separated)")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime intra-op threads (default: one per CPU)")
    args = parser.parse_args()
    quiet_logs()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
