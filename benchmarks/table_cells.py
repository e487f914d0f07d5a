"""Table cells recovered from the corpus's table documents, and what PDF table detection costs.

Part 1: each file in ``benchmarks/data/table_cells.json`` (cells written by hand) is parsed as
an upload would be, the Markdown tables of its text are read back into grids, and a cell counts
as recovered when one of those tables holds its text at its row and column (each expected table
is matched to the parsed table where most of its cells land). The ``held_out`` files are
reported apart: aligned-text tables the detector was not tuned on (``print:`` HTML is printed
to PDF by headless Chromium first; ``scan+print:`` then scans one page of it). Part 2: the
corpus's PDFs are parsed (OCR off) with table detection off (``pdf_tables.
page_text_with_tables`` replaced by a function returning None: the text of before), with
ruled tables only (the aligned-text signal answering no) and with both; CPU time, best of
five.
Run from the repository root:

    .venv/bin/python benchmarks/table_cells.py            # both parts
    .venv/bin/python benchmarks/table_cells.py --cells    # part 1 only
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from _scans import scan_pdf

from docworkers.errors import DocumentError
from docworkers.ingest.chunking.tables import table_blocks
from docworkers.ingest.parsing import aligned_tables, parse_document
from docworkers.ingest.parsing import pdf as pdf_parser
from docworkers.ingest.parsing.pdf_tables import may_have_tables

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
EXPECTED = ROOT / "benchmarks" / "data" / "table_cells.json"
TIMED = ("pdf/DA-619p.pdf", "pdf/layout-parser-paper-with-table.pdf",
         "pdf/korean-text-with-tables.pdf", "pdf/pdf2image-memory-error-test-400p.pdf",
         "pdf/pypdf_009-pdflatex-geotopo_GeoTopo-komprimiert.pdf", "pdf/failure-after-repair.pdf")


def _norm(text: str | None) -> str:
    return "".join((text or "").split())  # spacing is not structure


def parsed_tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables of ``text`` as grids (rule row dropped, '\\|' kept as '|')."""
    grids: list[list[list[str]]] = []
    for block in table_blocks(text):
        lines = text[block.start:block.end].split("\n")
        grid = []
        for number, line in enumerate(lines):
            if number == 1:
                continue
            cells = line.strip()[1:-1].replace("\\|", "\x00").split("|")
            grid.append([_norm(cell.replace("\x00", "|")) for cell in cells])
        grids.append(grid)
    return grids


def score(expected: Sequence[Sequence[str | None]], grid: Sequence[Sequence[str]]) -> int:
    hits = 0
    for r, row in enumerate(expected):
        for c, want in enumerate(row):
            if want is None:
                continue
            if r < len(grid) and c < len(grid[r]) and grid[r][c] == _norm(want):
                hits += 1
    return hits


def cells_table() -> None:
    data: dict[str, Any] = json.loads(EXPECTED.read_text())
    with tempfile.TemporaryDirectory() as folder:
        _cells_part(data["files"], "overall (tuned on)", Path(folder))
        print()
        _cells_part(data["held_out"], "held-out (not tuned on)", Path(folder))


def _printed(relative: str, folder: Path) -> Path:
    """``print:<html>[#note]``: the corpus HTML printed to PDF by headless Chromium."""
    source = CORPUS / relative.removeprefix("print:").partition("#")[0]
    target = folder / (source.stem + ".pdf")
    if target.exists():
        return target
    subprocess.run([shutil.which("chromium") or "chromium", "--headless", "--no-sandbox",
                    "--disable-gpu", "--no-pdf-header-footer", f"--print-to-pdf={target}",
                    source.as_uri()], capture_output=True, timeout=300, check=True)
    return target


def _scanned(relative: str, folder: Path) -> Path:
    """``scan+print:<html>#p<N>``: page N of the printed HTML as a scan (no text layer)."""
    printed = _printed(relative.removeprefix("scan+"), folder)
    page = int(relative.rpartition("#p")[2])
    return scan_pdf(printed, folder / f"{printed.stem}-p{page}-scan.pdf", [page - 1], dpi=200)


def _cells_part(files: dict[str, Any], label: str, folder: Path) -> None:
    print(f"{'file':58} {'tables':>6} {'cells':>6} {'right':>6} {'share':>7}")
    total = right = 0
    for relative, tables in files.items():
        if relative.startswith("scan+"):
            path = _scanned(relative, folder)
        elif relative.startswith("print:"):
            path = _printed(relative, folder)
        else:
            path = CORPUS / relative
        try:
            text = parse_document(path).text
        except DocumentError as exc:  # a scan without OCR installed: nothing recovered
            print(f"  {relative}: {exc}")
            text = ""
        grids = parsed_tables(text)
        cells = sum(1 for table in tables for row in table for cell in row if cell is not None)
        hits = sum(max((score(table, grid) for grid in grids), default=0) for table in tables)
        total += cells
        right += hits
        print(f"{relative:58} {len(grids):6} {cells:6} {hits:6} {hits / cells:7.1%}")
    print(f"{label:58} {'':6} {total:6} {right:6} {right / total:7.1%}")


def _cpu_seconds(path: Path) -> float:
    start = time.process_time()
    parse_document(path, ocr="never")  # OCR is another cost (and another process)
    return time.process_time() - start


def _off(page: object, textpage: object) -> None:
    return None


def cost_table(rounds: int = 5) -> None:
    """CPU seconds of this process (steadier than wall time on a busy machine), the best of
    ``rounds`` runs with detection off, with ruled tables only (the aligned-text signal
    answering no) and with both, alternated; ``aligned`` is the aligned-text share."""
    print(f"\n{'PDF (CPU s, best of ' + str(rounds) + ', OCR off)':58} {'pages':>5} {'tables':>6}"
          f" {'examined':>8} {'aligned':>7} {'before':>7} {'ruled':>7} {'after':>7} {'cost':>6}"
          f" {'aligned':>7}")
    detect = pdf_parser.page_text_with_tables
    signal = aligned_tables.may_have_aligned_tables
    for relative in TIMED:
        path = CORPUS / relative
        document = parse_document(path, ocr="never")
        tables = sum(len(table_blocks(page.text)) for page in document.pages)
        examined, aligned = _examined(path)
        before = ruled = after = float("inf")
        for _ in range(rounds):
            after = min(after, _cpu_seconds(path))
            aligned_tables.may_have_aligned_tables = _no  # type: ignore[assignment]
            try:
                ruled = min(ruled, _cpu_seconds(path))
            finally:
                aligned_tables.may_have_aligned_tables = signal
            pdf_parser.page_text_with_tables = _off  # type: ignore[assignment]
            try:
                before = min(before, _cpu_seconds(path))
            finally:
                pdf_parser.page_text_with_tables = detect
        print(f"{relative:58} {document.metadata['page_count']:5} {tables:6} {examined:8}"
              f" {aligned:7} {before:7.3f} {ruled:7.3f} {after:7.3f} {after / before - 1:+6.0%}"
              f" {(after - ruled) / before:+7.0%}")


def _no(textpage: object) -> bool:
    return False


def _examined(path: Path) -> tuple[int, int]:
    """Pages that pass the cheap signals, ruled and aligned (the others cost one look at
    their path objects and text rectangles)."""
    pdf = pdfium.PdfDocument(str(path))
    try:
        ruled = aligned = 0
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            ruled += may_have_tables(page)
            aligned += aligned_tables.may_have_aligned_tables(textpage)
            textpage.close()
            page.close()
        return ruled, aligned
    finally:
        pdf.close()


if __name__ == "__main__":
    cells_table()
    if "--cells" not in sys.argv:
        cost_table()
