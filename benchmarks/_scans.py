"""Scanned PDFs made from real ones: each chosen page printed to a grey image and put back into
a PDF as that image alone, with no text layer (what a scanner or a fax gives).

The OCR benchmark builds its 20-page scan with :func:`scan_pdf`; the scans in
``tests/data/corpus/pdf/`` were made with it too (see that folder's README):

    .venv/bin/python benchmarks/_scans.py SOURCE.pdf OUT.pdf --dpi 150 --scan 1,2 [--keep 1]

``--scan`` lists the pages (1-based) that become images, ``--keep`` those copied as they are
(with their text layer); pages come out in page order.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import pypdfium2 as pdfium


def scan_pdf(source: Path, target: Path, scan: Iterable[int], *, keep: Iterable[int] = (),
             dpi: int = 150) -> Path:
    """Write ``target``: the 0-based pages ``scan`` of ``source`` as grey images at ``dpi``,
    the pages ``keep`` copied with their text, in page order."""
    scanned, kept = set(scan), set(keep)
    original = pdfium.PdfDocument(source)
    out = pdfium.PdfDocument.new()
    try:
        for index in sorted(scanned | kept):
            if index in kept:
                out.import_pages(original, [index])
                continue
            page = original[index]
            width, height = page.get_size()
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            page.close()
            image = pdfium.PdfImage.new(out)
            image.set_bitmap(bitmap)  # pdfium stores it Flate-compressed
            image.set_matrix(pdfium.PdfMatrix().scale(width, height))
            new = out.new_page(width, height)
            new.insert_obj(image)
            new.gen_content()
            new.close()
            bitmap.close()
        out.save(target)
    finally:
        out.close()
        original.close()
    return target


def _pages(text: str) -> list[int]:
    return [int(part) - 1 for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--scan", type=_pages, required=True, help="pages to scan, 1-based")
    parser.add_argument("--keep", type=_pages, default=[], help="pages to copy, 1-based")
    parser.add_argument("--dpi", type=int, default=150)
    args = parser.parse_args()
    scan_pdf(args.source, args.target, args.scan, keep=args.keep, dpi=args.dpi)
    print(f"{args.target}: {args.target.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
