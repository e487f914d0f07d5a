"""How fast OCR reads a scanned document, and how much memory it needs.

A 20-page scan is made at run time from the first 20 pages of a real corpus PDF (printed to grey
150 dpi images and put back into a PDF without a text layer: ``benchmarks/_scans.py``), then
parsed by a fresh :class:`~docworkers.ingest.parsing.IsolatedParser` per setting, the way
workers parse uploads (``ocr=auto``: every page needs OCR); with N children, N copies of the
scan are parsed at once (N documents in flight). Reported per setting: pages per second (all
children together), the largest parser child's peak RSS (VmHWM), the peak RSS of a Tesseract
process (sampled every 10 ms), the mean word confidence, and word recall: the share of the
original text layer's words (3+ letters, counted with repeats) that the OCR text holds as
often, a rough check that the speed is not bought with garbage. Timings depend on what else
the machine runs: the load average is printed with them. Run from the repository root:

    .venv/bin/python benchmarks/ocr_throughput.py [--source PDF] [--pages 20] [--dpi 300 200]
        [--children 1 2]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pypdfium2 as pdfium
from _scans import scan_pdf

from docworkers.ingest.parsing import IsolatedParser, ParseLimits

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pdf"
SOURCE = SHARED / "pdf2image-memory-error-test-400p.pdf"  # a 400-page manual, US letter
_WORD = re.compile(r"[a-z]{3,}")


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of a live process, from /proc (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class TesseractPeak:
    """Samples the RSS peak of the processes a parser child starts (Tesseract), until stopped."""

    def __init__(self, parent: int) -> None:
        self.parent = parent
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TesseractPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for pid in children_of(self.parent):
                self.peak_kib = max(self.peak_kib, vm_hwm_kib(pid))


def words(text: str) -> Counter[str]:
    return Counter(_WORD.findall(text.lower()))


def text_layer_words(source: Path, pages: int) -> Counter[str]:
    document = pdfium.PdfDocument(source)
    try:
        found: Counter[str] = Counter()
        for index in range(pages):
            page = document[index]
            textpage = page.get_textpage()
            found.update(words(textpage.get_text_range()))
            textpage.close()
            page.close()
        return found
    finally:
        document.close()


def measure(scan: Path, dpi: int, children: int, expected: Counter[str]) -> dict[str, object]:
    with IsolatedParser(limits=ParseLimits(ocr_dpi=dpi), size=children) as parser, \
            ThreadPoolExecutor(children) as pool:
        # Start every child first (one page each, at once, so each takes its own child).
        list(pool.map(lambda i: parser.parse(scan, filename=f"warm-{i}.pdf", max_pages=1),
                      range(children)))
        pids = parser.pids
        started = time.perf_counter()
        with ExitStack() as stack:
            peaks = [stack.enter_context(TesseractPeak(pid)) for pid in pids]
            documents = list(pool.map(lambda i: parser.parse(scan, filename=f"scan-{i}.pdf"),
                                      range(children)))
        seconds = time.perf_counter() - started
        child_kib = max(vm_hwm_kib(pid) for pid in pids)
    document = documents[0]
    read = [page for page in document.pages if page.ocr]
    confidences = [p.ocr_confidence for p in read if p.ocr_confidence is not None]
    found = words(document.text)
    total = sum(len([p for p in d.pages if p.ocr]) for d in documents)
    return {
        "dpi": dpi,
        "children": children,
        "pages": total,
        "seconds": seconds,
        "pages_per_s": total / seconds,
        "child_mib": child_kib / 1024,
        "tesseract_mib": max(peak.peak_kib for peak in peaks) / 1024,
        "confidence": sum(confidences) / max(len(confidences), 1),
        "recall": (found & expected).total() / max(expected.total(), 1),
        "skipped": sum(len(d.metadata.get("ocr_skipped_pages", [])) for d in documents),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--dpi", type=int, nargs="+", default=[300, 200])
    parser.add_argument("--children", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    expected = text_layer_words(args.source, args.pages)
    with tempfile.TemporaryDirectory() as folder:
        scan = scan_pdf(args.source, Path(folder) / f"scan-{args.pages}p.pdf",
                        range(args.pages), dpi=150)
        print(f"{args.pages}-page scan of {args.source.name} (grey, 150 dpi, "
              f"{scan.stat().st_size / 1e6:.1f} MB), Tesseract single-threaded; load "
              "average before: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs\n")
        print(f"{'OCR dpi':>7} {'children':>8} {'pages':>5} {'seconds':>8} {'pages/s':>8} "
              f"{'child MiB':>9} {'tesseract MiB':>13} {'confidence':>10} {'recall':>7} "
              f"{'skipped':>7}")
        for dpi in args.dpi:
            for children in args.children:
                r = measure(scan, dpi, children, expected)
                print(f"{r['dpi']:>7} {r['children']:>8} {r['pages']:>5} {r['seconds']:>8.1f} "
                      f"{r['pages_per_s']:>8.2f} {r['child_mib']:>9.0f} "
                      f"{r['tesseract_mib']:>13.0f} {r['confidence']:>10.1f} "
                      f"{r['recall']:>7.1%} {r['skipped']:>7}", flush=True)


if __name__ == "__main__":
    main()
