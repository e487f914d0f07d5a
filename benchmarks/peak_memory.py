"""Peak memory of ingesting one large PDF with ``docworkers ingest --wait``, whole process tree.

Run from the repository root:

    .venv/bin/python benchmarks/peak_memory.py [--quick] [--corpus DIR] [--file pdf/DA-619p.pdf]

The command runs in a fresh process as a user runs it (it loads the model, opens an embedded
Chroma in a temporary folder, parses in its child process, and processes the upload itself) on
a private Redis. The memory of its whole process tree (the command, the parser child, anything
else it starts) is sampled from /proc every 0.2 s: the largest sum of the processes' RSS at one
moment, and an upper bound no spike escapes (the largest sum of the live processes' own peaks,
VmHWM). The Redis server is not part of the tree: it is a service the worker connects to.

``--quick`` ingests only the first 60 pages.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _ingest_harness import corpus_dir, run_ingest_command, status_mb

from docworkers.embedded import EmbeddedRedis

__all__ = ["status_mb"]  # benchmarks/hostile_inputs.py reads its figures with it

TARGET_MB = 600
QUICK_PAGES = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"first {QUICK_PAGES} pages only")
    parser.add_argument("--corpus", help="corpus folder (default: ../shared/corpus)")
    parser.add_argument("--file", default="pdf/DA-619p.pdf", help="file inside the corpus")
    args = parser.parse_args()
    corpus = corpus_dir(args.corpus)
    extra = ["--max-pages", str(QUICK_PAGES)] if args.quick else []
    with tempfile.TemporaryDirectory(prefix="docworkers-bench-") as tmp, EmbeddedRedis() as server:
        folder = Path(tmp) / "documents"
        folder.mkdir()
        shutil.copy(corpus / args.file, folder)
        run = run_ingest_command(folder, Path(tmp) / "work", server.url, extra=extra)
    memory = run.memory
    print(f"{args.file}: {run.chunks} chunks in {run.seconds:.0f} s, start-up included "
          f"(docworkers ingest --wait, fresh process; {run.note})")
    print()
    print(f"| {'process':<50} | {'peak MB':>7} |")
    print(f"|{'-' * 52}|{'-' * 9}|")
    for name, mb in memory.peaks.values():
        print(f"| {name:<50} | {mb:>7.0f} |")
    print(f"| {'whole tree, largest sum at one moment (sampled)':<50} | "
          f"{memory.largest_sum:>7.0f} |")
    print(f"| {'whole tree, upper bound (live processes peaks)':<50} | {memory.bound:>7.0f} |")
    print()
    verdict = "within" if memory.bound <= TARGET_MB else "OVER"
    print(f"whole tree at most {memory.bound:.0f} MB: {verdict} the {TARGET_MB} MB target")


if __name__ == "__main__":
    main()
