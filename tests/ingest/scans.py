"""What the OCR tests share: the scans made from the corpus's real PDFs (see
tests/data/corpus/README.md) and sentences known to be on their pages."""

from __future__ import annotations

from pathlib import Path

CORPUS_PDF = Path(__file__).resolve().parents[1] / "data" / "corpus" / "pdf"
SCANNED_MEMO = "pdf/scanned-fake-memo.pdf"  # one page, image only
MIXED = "pdf/mixed-layout-parser-paper-p2-scanned.pdf"  # page 1 text, page 2 image only
MEMO_SENTENCE = "There were 20,000 bottles of water, 10,000 blankets, and 200 laptops delivered"
PAGE_1_SENTENCE = "This paper introduces LayoutParser"  # in the mixed PDF's page 1 text layer
PAGE_2_SENTENCE = "DL has the potential to transform DIA pipelines"  # on its scanned page 2
TOO_LITTLE_MEMORY = 32 * 1024 * 1024  # Tesseract cannot even load its libraries in this


def flat(text: str) -> str:
    """``text`` with every run of whitespace (OCR's line breaks) as one space."""
    return " ".join(text.split())
