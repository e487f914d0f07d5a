"""Peak memory of ingesting one large PDF through the whole pipeline, in a fresh process.

Run from the repository root:

    .venv/bin/python benchmarks/peak_memory.py [--quick] [--corpus DIR] [--file pdf/DA-619p.pdf]

A fresh interpreter loads the model, starts a private Redis, an UploadWorker (parsing in its
child process, Chroma in a temporary folder) and ingests the file as one ``document_upload``
job. Peak resident memory is reported per process, since parsing runs in a child:

* worker: ``getrusage(RUSAGE_SELF).ru_maxrss`` (the model, Chroma, chunks, embeddings);
* parser child: its ``VmHWM`` from /proc, read before the child is stopped;
* all reaped children: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after everything stopped (the
  largest of the parser child and the Redis server). Linux keeps a child's maximum across
  ``exec``, so this also counts the copy of the parent a child is forked from before it execs
  (the Redis server is started with ``preexec_fn``, i.e. a real fork): an upper bound, not any
  process's own peak. The /proc ``VmHWM`` figures are.

``--quick`` ingests only the first 60 pages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _ingest_harness import IngestHarness, corpus_dir, quiet_logs, upload_payload

TARGET_MB = 600
QUICK_PAGES = 60


def status_mb(pid: int | str, field: str) -> float | None:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM) in MB, None if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def child_run(path: Path, max_pages: int) -> dict[str, Any]:
    marks: dict[str, Any] = {"after_imports_mb": status_mb("self", "VmRSS")}
    from docworkers.ingest.embedding import OnnxMiniLMEmbedder

    embedder = OnnxMiniLMEmbedder()
    marks["after_model_load_mb"] = status_mb("self", "VmRSS")
    async with IngestHarness(embedder, concurrency=1) as harness:
        stored = harness.storage / path.name
        shutil.copy(path, stored)
        started = time.perf_counter()
        run = await harness.ingest([upload_payload(stored, "memory", max_pages=max_pages)])
        marks["seconds"] = time.perf_counter() - started
        if run.failed:
            raise RuntimeError(f"the upload failed: {run.failed[0].error}")
        result = run.jobs[0].result
        marks["pages"] = result.get("page_count")
        marks["chunks"] = result["chunk_count"]
        parser_pids = harness.services.parser.pids
        peaks = [status_mb(pid, "VmHWM") for pid in parser_pids]
        marks["parser_child_peak_mb"] = max((p for p in peaks if p is not None), default=None)
        redis = harness.redis.process
        marks["redis_peak_mb"] = status_mb(redis.pid, "VmHWM") if redis else None
        marks["worker_rss_at_end_mb"] = status_mb("self", "VmRSS")
    marks["worker_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    marks["children_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"first {QUICK_PAGES} pages only")
    parser.add_argument("--corpus", help="corpus folder (default: ../shared/corpus)")
    parser.add_argument("--file", default="pdf/DA-619p.pdf", help="file inside the corpus")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    corpus = corpus_dir(args.corpus)
    max_pages = QUICK_PAGES if args.quick else 0
    if args.child:
        quiet_logs()
        print(json.dumps(asyncio.run(child_run(corpus / args.file, max_pages))))
        return
    command = [sys.executable, __file__, "--child", "--corpus", str(corpus), "--file", args.file]
    if args.quick:
        command.append("--quick")
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    marks = json.loads(out.strip().splitlines()[-1])

    def mb(key: str) -> str:
        value = marks.get(key)
        return "-" if value is None else f"{value:.0f}"

    pages = marks["pages"] or "?"
    print(f"{args.file}: {pages} pages -> {marks['chunks']} chunks in {marks['seconds']:.0f} s "
          f"(fresh process, concurrency 1)")
    print()
    print(f"| {'process / moment':<50} | {'MB':>6} |")
    print(f"|{'-' * 52}|{'-' * 8}|")
    rows = [
        ("worker RSS after imports", "after_imports_mb"),
        ("worker RSS after loading the model", "after_model_load_mb"),
        ("worker RSS at the end", "worker_rss_at_end_mb"),
        ("worker peak (ru_maxrss, self)", "worker_peak_mb"),
        ("parser child peak (VmHWM)", "parser_child_peak_mb"),
        ("Redis server peak (VmHWM)", "redis_peak_mb"),
        ("reaped children (ru_maxrss, children; fork image)", "children_peak_mb"),
    ]
    for label, key in rows:
        print(f"| {label:<50} | {mb(key):>6} |")
    print()
    verdict = "within" if marks["worker_peak_mb"] <= TARGET_MB else "OVER"
    print(f"worker peak {marks['worker_peak_mb']:.0f} MB: {verdict} the {TARGET_MB} MB target "
          "(the model included; the parser child is a separate process)")


if __name__ == "__main__":
    main()
