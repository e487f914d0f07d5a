"""How fast the sheet, slide, legacy Word and email parsers are, and how much memory they need.

Large inputs are built from the test corpus's real files in a temporary folder: a workbook of
50,000 rows (the Stanley Cups table repeated, each row numbered) as .xlsx and as .csv, a deck
of 200 slides (favorite-things.pptx's two slides repeated, with notes) and an email carrying
the memo PDF and DOCX; the .doc files are the corpus's own (antiword and piece-table paths).
Each file is parsed in a fresh interpreter so the peak RSS (ru_maxrss) is that file's alone.
Run from the repository root:

    .venv/bin/python benchmarks/format_speed.py
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "corpus"
ROWS = 50_000
SLIDES = 200


def measure(path: Path) -> dict[str, object]:
    from docworkers.ingest.parsing import parse_document

    started = time.perf_counter()
    document = parse_document(path)
    seconds = time.perf_counter() - started
    units = sum(1 for line in document.text.splitlines() if line.startswith("| "))
    if document.kind == "pptx":
        units = len(document.pages)
    return {"file": path.name, "kind": document.kind, "units": units,
            "chars": len(document.text), "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def build(folder: Path) -> list[Path]:
    import openpyxl
    import pptx

    header = ["n", "Team", "Location", "Stanley Cups"]
    teams = [("Blues", "STL", 1), ("Flyers", "PHI", 2), ("Maple Leafs", "TOR", 13)]
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Stanley Cups")
    sheet.append(header)
    csv_lines = [",".join(header)]
    for n in range(ROWS):
        team, location, cups = teams[n % 3]
        sheet.append([n, team, location, cups])
        csv_lines.append(f"{n},{team},{location},{cups}")
    book.save(folder / "cups-50000-rows.xlsx")
    (folder / "cups-50000-rows.csv").write_text("\n".join(csv_lines) + "\n")

    deck = pptx.Presentation(str(CORPUS / "formats" / "favorite-things.pptx"))
    for n in range(SLIDES - len(deck.slides)):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Favorite thing {n + 3}"
        slide.placeholders[1].text_frame.text = "Parrots and hockey, DOYLESTOWN, PA 18901"
        slide.notes_slide.notes_text_frame.text = "This is my first thought."
    deck.save(str(folder / "slides-200.pptx"))

    files = [folder / "cups-50000-rows.xlsx", folder / "cups-50000-rows.csv",
             folder / "slides-200.pptx"]
    for name in ("formats/tests-example.xls", "formats/memo-with-attachments.eml",
                 "formats/fake-email-attachment.msg", "docx/fake-doc-emphasized-text.doc",
                 "docx/simple.doc"):
        shutil.copy(CORPUS / name, folder / Path(name).name)
        files.append(folder / Path(name).name)
    return files


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(Path(sys.argv[2]))))
        return
    with tempfile.TemporaryDirectory() as temp:
        rows = [json.loads(subprocess.run([sys.executable, __file__, "--one", str(path)],
                                          check=True, capture_output=True, text=True).stdout)
                for path in build(Path(temp))]
    print(f"| {'file':<34} | {'kind':<4} | {'rows/slides':>11} | {'chars':>9} | "
          f"{'seconds':>7} | {'per second':>10} | {'peak RSS MB':>11} |")
    print(f"|{'-' * 36}|{'-' * 6}|{'-' * 13}|{'-' * 11}|{'-' * 9}|{'-' * 12}|{'-' * 13}|")
    for row in rows:
        rate = row["units"] / row["seconds"] if row["units"] else 0
        print(f"| {row['file']:<34} | {row['kind']:<4} | {row['units']:>11,} | "
              f"{row['chars']:>9,} | {row['seconds']:>7.3f} | {rate:>10,.0f} | "
              f"{row['peak_rss_mb']:>11.0f} |")


if __name__ == "__main__":
    main()
