"""OCR of PDF pages: render with pdfium, recognise with Tesseract, one page at a time.

Scans (signed contracts, faxed confirmations) have no text layer; their pages are rendered in
grey at ``ocr_dpi`` and read by the ``tesseract`` program (Debian's ``tesseract-ocr`` and a
``tesseract-ocr-<lang>`` pack per language). Each page is its own Tesseract process with its
own time and memory limit (``ParseLimits.ocr_page_timeout_seconds``/``ocr_max_memory_bytes``),
so a page it cannot read is skipped with a warning while the rest of the document is kept;
all OCR of a document shares ``ocr_timeout_seconds``. Tesseract's TSV output gives each word
with a confidence; a page's confidence is the mean over its words (0-100). Tesseract's default
layout analysis reads pages turned by 90 degrees but not upside-down ones: a page read with a
confidence below :data:`LOW_CONFIDENCE` is read again with orientation detection (``--psm 1``,
the ``osd`` pack), and the better reading kept.

The ``ocr`` option of an upload says which pages: ``auto`` (those without a text layer),
``always`` (every page; the text layer is kept where OCR reads nothing or fails) or ``never``.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from docworkers.errors import OcrUnavailableError
from docworkers.ingest.defaults import DEFAULT_OCR, OCR_MODES, OcrMode
from docworkers.ingest.document import Page
from docworkers.ingest.parsing._common import Deadline, clean_text, megabytes
from docworkers.ingest.parsing.aligned_tables import ocr_tables
from docworkers.ingest.parsing.limits import ParseLimits, check_mode

__all__ = [
    "BLANK_LEVEL", "DEFAULT_OCR", "LOW_CONFIDENCE", "MAX_PIXELS", "OCR_MODES", "OcrMode",
    "OcrPageError", "PageReader", "Reading", "check_languages", "check_mode",
    "installed_languages", "is_blank", "parse_tsv", "recognise", "render_page",
]

_LOG = logging.getLogger(__name__)

#: A page rendered larger than this many pixels is rendered at a lower resolution instead
#: (a poster-sized page at 300 dpi would need gigabytes).
MAX_PIXELS = 40_000_000
#: A page rendered without a pixel darker than this (0 black, 255 white) holds no writing and
#: is not given to Tesseract, which took 0.6 s of CPU to find nothing on each of the two blank
#: pages of the corpus's 400-page PDF (2026-12-07). A faint scan still has darker pixels.
BLANK_LEVEL = 0xE0
#: A page read with a lower mean confidence is read again with orientation detection (an
#: upside-down scan reads at about 35, a clean one at 90-96).
LOW_CONFIDENCE = 60.0
_WORD_LEVEL = "5"  # TSV rows: 1 page, 2 block, 3 paragraph, 4 line, 5 word
_LIST_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Reading:
    """What Tesseract read on one page."""

    text: str
    confidence: float | None  # mean word confidence, 0-100; None when it found no words


class OcrPageError(Exception):
    """One page could not be read; the message is the warning recorded on the document."""


@functools.cache
def installed_languages() -> frozenset[str] | None:
    """The language packs Tesseract has; None when the ``tesseract`` program is missing."""
    program = shutil.which("tesseract")
    if program is None:
        return None
    try:
        listed = subprocess.run([program, "--list-langs"], capture_output=True, text=True,
                                timeout=_LIST_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = listed.stdout.splitlines()[1:]  # the first line names the tessdata folder
    return frozenset(line.strip() for line in lines if line.strip())


def check_languages(languages: str, filename: str) -> None:
    """OcrUnavailableError unless Tesseract and every pack in ``languages`` are installed."""
    installed = installed_languages()
    if installed is None:
        raise OcrUnavailableError(filename, (
            "the PDF has pages without text that need OCR, but the 'tesseract' program is not "
            "installed on this worker; install it (Debian: apt-get install tesseract-ocr "
            "tesseract-ocr-eng) or upload with ocr=never."))
    missing = [code for code in languages.split("+") if code not in installed]
    if missing:
        raise OcrUnavailableError(filename, (
            f"the OCR language pack {', '.join(repr(m) for m in missing)} named by the "
            f"ocr_languages setting ({languages!r}) is not installed (installed: "
            f"{', '.join(sorted(installed)) or 'none'}); install tesseract-ocr-{missing[0]} "
            "or change the setting."))


def render_page(page: Any, dpi: int) -> tuple[bytes, int]:
    """The page as a grey PGM image and the resolution it was rendered at (lower than
    ``dpi`` for a page too large for :data:`MAX_PIXELS`)."""
    width, height = page.get_size()  # PDF points, 72 per inch
    pixels = width * height * (dpi / 72) ** 2
    if pixels > MAX_PIXELS:
        dpi = max(1, int(dpi * (MAX_PIXELS / pixels) ** 0.5))
    bitmap = page.render(scale=dpi / 72, grayscale=True)
    try:
        w, h, stride = bitmap.width, bitmap.height, bitmap.stride
        buffer = memoryview(bitmap.buffer)
        rows = buffer if stride == w else b"".join(
            buffer[row * stride:row * stride + w] for row in range(h))
        return b"P5\n%d %d\n255\n" % (w, h) + bytes(rows), dpi
    finally:
        bitmap.close()


def is_blank(image: bytes) -> bool:
    """True when the PGM ``image`` (as :func:`render_page` makes it) has no pixel darker than
    :data:`BLANK_LEVEL`."""
    pixels = np.frombuffer(image.split(b"\n", 3)[3], dtype=np.uint8)
    return not pixels.size or int(pixels.min()) >= BLANK_LEVEL


def recognise(image: bytes, dpi: int, limits: ParseLimits, seconds: float, *,
              orientation: bool = False) -> Reading:
    """Read a PGM ``image`` with Tesseract within ``seconds`` and ``ocr_max_memory_bytes``
    (``orientation``: detect the page's orientation first); OcrPageError when it fails, is
    killed or runs out of time."""
    program = shutil.which("tesseract") or "tesseract"
    command = [program, "stdin", "stdout", "-l", limits.ocr_languages, "--dpi", str(dpi),
               *(["--psm", "1"] if orientation else []), "tsv"]
    memory = limits.ocr_max_memory_bytes
    try:
        done = subprocess.run(
            command, input=image, capture_output=True, timeout=seconds, check=False,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},  # parallelism comes from documents
            # Runs between fork and exec: fine in the parser child, which has no other threads.
            preexec_fn=functools.partial(_limit_memory, memory),
        )
    except subprocess.TimeoutExpired:
        raise OcrPageError(f"OCR did not finish within {seconds:g} s") from None
    except OSError as exc:
        raise OcrPageError(f"OCR could not start ({exc.strerror or exc})") from None
    if done.returncode != 0:
        raise OcrPageError(f"OCR failed ({_describe(done.returncode, done.stderr, memory)})")
    return parse_tsv(done.stdout.decode("utf-8", errors="replace"), dpi)


def parse_tsv(tsv: str, dpi: int = 300) -> Reading:
    """Tesseract's TSV as text (a line per line, a blank line between blocks and paragraphs;
    a table, found from the word boxes by :mod:`~docworkers.ingest.parsing.aligned_tables`,
    as a Markdown table where its first word was) and the mean confidence of its words."""
    rows = [cells for cells in (row.split("\t") for row in tsv.splitlines()[1:])
            if len(cells) == 12 and cells[0] == _WORD_LEVEL]
    tables = _tables([(cells[11].strip(), *_box(cells)) for cells in rows], dpi)
    owner = {number: position for position, (numbers, _) in enumerate(tables)
             for number in numbers}
    placed: set[int] = set()
    lines: list[str] = []
    words: list[str] = []
    confidences: list[float] = []
    where: tuple[str, str, str] | None = None
    for number, cells in enumerate(rows):
        if not cells[11].strip().strip("|"):
            continue  # nothing, or a ruling line read as a letter
        table = owner.get(number)
        if table is not None:
            if words:
                lines.append(" ".join(words))
            if table not in placed:
                placed.add(table)
                lines.extend(["", tables[table][1], ""])
            words, where = [], None
            _confidence(cells, confidences)
            continue
        block, paragraph, line = cells[2], cells[3], cells[4]
        if (block, paragraph, line) != where:
            if words:
                lines.append(" ".join(words))
            if where is not None and (block, paragraph) != where[:2]:
                lines.append("")
            words, where = [], (block, paragraph, line)
        words.append(cells[11].strip())
        _confidence(cells, confidences)
    if words:
        lines.append(" ".join(words))
    mean = round(sum(confidences) / len(confidences), 1) if confidences else None
    return Reading(clean_text("\n".join(lines)), mean)


def _tables(words: Sequence[tuple[str, float, float, float, float]],
            dpi: int) -> list[tuple[frozenset[int], str]]:
    try:
        return ocr_tables(words, dpi)
    except Exception:  # an odd page must never cost its text: read it without tables
        _LOG.warning("table detection failed on an OCR'd page; its text is kept as is",
                     exc_info=True)
        return []


def _box(cells: Sequence[str]) -> tuple[float, float, float, float]:
    """A TSV row's left, top, width and height (pixels); an empty box when unreadable."""
    try:
        return float(cells[6]), float(cells[7]), float(cells[8]), float(cells[9])
    except ValueError:
        return 0.0, 0.0, 0.0, 0.0


def _confidence(cells: Sequence[str], confidences: list[float]) -> None:
    try:
        confidence = float(cells[10])
    except ValueError:
        return
    if confidence >= 0:
        confidences.append(confidence)


class PageReader:
    """Decides for each page of one PDF whether to OCR it (the upload's ``ocr`` mode), does
    it, and keeps what the document should record: which pages were OCR'd, which were skipped
    and why (``metadata()``)."""

    def __init__(self, mode: OcrMode, limits: ParseLimits, deadline: Deadline,
                 filename: str) -> None:
        self.mode = check_mode(mode)
        self._limits = limits
        self._deadline = deadline
        self._filename = filename
        self._budget_end: float | None = None  # set when the first page needs OCR
        self.read: list[int] = []
        self.skipped: list[int] = []
        self.warnings: list[str] = []

    def page(self, pdf: Any, index: int, text: str) -> Page | None:
        """Page ``index`` (0-based) from its text layer ``text`` or OCR; None when neither
        holds text. A page OCR cannot read is skipped (recorded), never an error; with
        ``always``, its text layer is kept instead (with a warning)."""
        number = index + 1
        if self.mode == "never" or (self.mode == "auto" and text):
            return Page(text, number) if text else None
        reading = self._read(pdf, index)
        if isinstance(reading, str):  # why OCR failed
            if text:
                self.warnings.append(f"page {number}: {reading}; its text layer was kept.")
                return Page(text, number)
            self.skipped.append(number)
            self.warnings.append(f"page {number} was skipped: {reading}.")
            return None
        if not reading.text:
            return Page(text, number) if text else None  # "always": keep the text layer
        self.read.append(number)
        return Page(reading.text, number, ocr=True, ocr_confidence=reading.confidence)

    def metadata(self) -> dict[str, Any]:
        """What the document records about OCR (nothing when no page needed it):
        ``ocr_pages`` read by OCR, ``ocr_skipped_pages`` it could not read, ``ocr_warnings``
        (a sentence per page it could not read), and ``ocr_mode`` when it was not the default,
        so a reindex re-reads the document the way its upload asked."""
        found: dict[str, Any] = {}
        if self.mode != DEFAULT_OCR:
            found["ocr_mode"] = self.mode
        if self.read:
            found["ocr_pages"] = self.read
        if self.skipped:
            found["ocr_skipped_pages"] = self.skipped
        if self.warnings:
            found["ocr_warnings"] = self.warnings
        return found

    def no_text_reason(self, scope: str) -> str:
        """Why a PDF none of whose pages (``scope``) gave text ends in ``no_text``."""
        if self.mode == "never":
            return (f"the PDF has no text layer on {scope} (it is probably scanned images), and "
                    "OCR was turned off (ocr=never). Upload it again with ocr=auto, or upload a "
                    "PDF with real text.")
        if self.skipped:
            return (f"the PDF has no text layer on {scope}, and OCR could not read them: "
                    f"{self.warnings[0]}")
        return (f"the PDF has no text layer on {scope}, and OCR found no text in them (blank "
                "pages, or images without writing). Upload a PDF with real text or a clearer "
                "scan.")

    def _read(self, pdf: Any, index: int) -> Reading | str:
        """OCR of one page, or why it could not be read."""
        limits = self._limits
        self._deadline.check()
        if self._budget_end is None:
            check_languages(limits.ocr_languages, self._filename)
            self._deadline.extend(limits.ocr_timeout_seconds)
            self._budget_end = time.monotonic() + limits.ocr_timeout_seconds
        left = self._budget_end - time.monotonic()
        if left <= 0:
            return f"the document's OCR time limit of {limits.ocr_timeout_seconds:g} s was used up"
        page = pdf[index]
        try:
            image, dpi = render_page(page, limits.ocr_dpi)
        finally:
            page.close()
        if is_blank(image):
            return Reading("", None)  # what Tesseract reads there, without running it
        seconds = min(limits.ocr_page_timeout_seconds, left)
        until = time.monotonic() + seconds
        try:
            reading = recognise(image, dpi, limits, seconds)
        except OcrPageError as exc:
            return str(exc)
        if reading.confidence is None or reading.confidence >= LOW_CONFIDENCE or \
                "osd" not in (installed_languages() or ()):
            return reading
        try:  # upside down? (within what is left of the page's time)
            turned = recognise(image, dpi, limits, max(until - time.monotonic(), 0.001),
                               orientation=True)
        except OcrPageError:
            return reading
        return turned if (turned.confidence or 0.0) > reading.confidence else reading


def _limit_memory(limit: int) -> None:
    """In the Tesseract process before it starts: its own address-space limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _describe(returncode: int, stderr: bytes, memory: int) -> str:
    if returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        lines = stderr.decode("utf-8", errors="replace").strip().splitlines()
        how = f"exit code {returncode}" + (f": {lines[-1].strip()[:200]}" if lines else "")
    return f"{how}; the OCR memory limit is {megabytes(memory)}"
