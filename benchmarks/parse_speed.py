"""How fast the in-process parsers are on the corpus's large files, and how much memory they need.

Each file is parsed in a fresh interpreter so that the peak RSS (ru_maxrss) belongs to that file
alone. Run from the repository root:

    .venv/bin/python benchmarks/parse_speed.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from docworkers.ingest.parsing import parse_document

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
FILES = {
    # relative path: page count to report when the format itself has no pages (the README's)
    "pdf/DA-619p.pdf": None,
    "docx/handbook-872p.docx": 872,
    "html/example-10k.html": None,
    "text/book-war-and-peace-1225p.txt": 1225,
}


def measure(path: Path, nominal_pages: int | None) -> dict[str, object]:
    started = time.perf_counter()
    document = parse_document(path)
    seconds = time.perf_counter() - started
    pages = document.metadata.get("page_count") or nominal_pages
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "file": path.name,
        "pages": pages,
        "chars": len(document.text),
        "seconds": seconds,
        "pages_per_s": pages / seconds if pages else None,
        "peak_rss_mb": peak_kib / 1024,
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        relative = sys.argv[2]
        print(json.dumps(measure(CORPUS / relative, FILES[relative])))
        return
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found at {CORPUS}")
    rows = []
    for relative in FILES:
        out = subprocess.run(
            [sys.executable, __file__, "--one", relative],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append(json.loads(out))
    print(f"| {'file':<34} | {'pages':>5} | {'chars':>9} | {'seconds':>7} | {'pages/s':>7} "
          f"| {'peak RSS MB':>11} |")  # fmt: skip
    print(f"|{'-' * 36}|{'-' * 7}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 13}|")
    for row in rows:
        pages = "-" if row["pages"] is None else str(row["pages"])
        rate = "-" if row["pages_per_s"] is None else f"{row['pages_per_s']:.0f}"
        print(
            f"| {row['file']:<34} | {pages:>5} | {row['chars']:>9,} | {row['seconds']:>7.2f} "
            f"| {rate:>7} | {row['peak_rss_mb']:>11.0f} |"
        )


if __name__ == "__main__":
    main()
