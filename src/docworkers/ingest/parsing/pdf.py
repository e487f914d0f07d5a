"""PDF text extraction with pypdfium2, one page at a time so memory stays flat.

pdfium is not thread-safe, so all calls into it from this process go through one lock; run an
:class:`~docworkers.ingest.parsing.IsolatedParser` with several children for parallel PDFs.
Pages without a text layer are read by OCR (:mod:`~docworkers.ingest.parsing.ocr`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium

from docworkers.errors import CorruptDocumentError, EncryptedDocumentError, NoExtractableTextError
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.parsing._common import Deadline, clean_text
from docworkers.ingest.parsing.limits import ParseLimits
from docworkers.ingest.parsing.ocr import DEFAULT_OCR, OcrMode, PageReader
from docworkers.ingest.parsing.pdf_tables import page_text_with_tables

_PDFIUM_LOCK = threading.Lock()
_ERR_PASSWORD = 4  # FPDF_ERR_PASSWORD
_ERR_SECURITY = 5  # FPDF_ERR_SECURITY: an encryption handler pdfium does not support
_METADATA_KEYS = {
    "Title": "title",
    "Author": "author",
    "Subject": "subject",
    "Keywords": "keywords",
}
_DATE_KEYS = {"CreationDate": "created", "ModDate": "modified"}
_PDF_DATE = re.compile(
    r"^(?:D:)?(\d{4})(\d\d)?(\d\d)?(\d\d)?(\d\d)?(\d\d)?\s*(?:([Zz])|([+-])(\d\d)'?(\d\d)?'?)?"
)
_REPAIR = "Open it in a PDF viewer and save or print it as a new PDF, then upload that."


def parse_pdf(
    path: Path, filename: str, max_pages: int, limits: ParseLimits, deadline: Deadline,
    ocr: OcrMode = DEFAULT_OCR,
) -> ParsedDocument:
    """Extract the text of each page, keeping 1-based page numbers; see module docstring."""
    with _PDFIUM_LOCK:
        pdf = _open(path, filename)
        try:
            return _extract(pdf, filename, max_pages, limits, deadline, ocr)
        finally:
            pdf.close()


def _open(path: Path, filename: str) -> Any:
    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == _ERR_PASSWORD:
            raise EncryptedDocumentError(
                filename,
                "the PDF is protected by a password; remove the password (for example by "
                "printing it to a new PDF) and upload it again.",
            ) from None
        if code == _ERR_SECURITY:
            raise EncryptedDocumentError(
                filename,
                "the PDF uses an encryption method that cannot be opened; save an unencrypted "
                "copy and upload that.",
            ) from None
        raise CorruptDocumentError(
            filename,
            f"the PDF is damaged and could not be repaired ({str(exc).rstrip('.')}). {_REPAIR}",
        ) from None


def _extract(
    pdf: Any, filename: str, max_pages: int, limits: ParseLimits, deadline: Deadline,
    ocr: OcrMode = DEFAULT_OCR,
) -> ParsedDocument:
    page_count = len(pdf)
    wanted = min(page_count, max_pages) if max_pages > 0 else page_count
    pages: list[Page] = []
    unreadable: list[int] = []
    chars = 0
    truncated = wanted < page_count
    reader = PageReader(ocr, limits, deadline, filename)  # OCR of the pages that need it
    for index in range(wanted):
        deadline.check()
        try:
            text = _page_text(pdf, index)
        except pdfium.PdfiumError:
            unreadable.append(index + 1)
            continue
        page = reader.page(pdf, index, text)
        if page is None:
            continue
        text = page.text
        room = limits.max_chars - chars
        if len(text) > room:
            if room > 0:
                pages.append(replace(page, text=text[:room]))
            truncated = True
            break
        pages.append(page)
        chars += len(text) + 2  # the blank line ParsedDocument.text puts between pages
    if not pages:
        _raise_no_text(filename, wanted, page_count, len(unreadable), reader)
    metadata = _metadata(pdf)
    metadata["page_count"] = page_count
    metadata.update(reader.metadata())
    if unreadable:
        metadata["unreadable_pages"] = unreadable
    return ParsedDocument(filename, "pdf", pages, metadata, truncated)


def _page_text(pdf: Any, index: int) -> str:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            # get_text_range returns every character, including text that a tight CropBox
            # would cut off; errors="replace" only marks broken ToUnicode maps with U+FFFD.
            # pages with ruling lines get their tables as Markdown (parsing/pdf_tables.py)
            text = clean_text(
                page_text_with_tables(page, textpage)
                or textpage.get_text_range(errors="replace")
            )
            # Text that lies entirely outside the visible page is not part of the document
            # (ImageMagick writes a "Background" label there on image-only pages).
            if text and not textpage.get_text_bounded(errors="replace").strip():
                text = ""
            return text
        finally:
            textpage.close()
    finally:
        page.close()


def _raise_no_text(
    filename: str, wanted: int, page_count: int, unreadable: int, reader: PageReader
) -> None:
    if unreadable == wanted:
        raise CorruptDocumentError(
            filename, f"none of the PDF's pages could be read; it is damaged. {_REPAIR}"
        )
    scope = f"the first {wanted} of its {page_count} pages" if wanted < page_count else "its pages"
    raise NoExtractableTextError(filename, reader.no_text_reason(scope))


def _metadata(pdf: Any) -> dict[str, Any]:
    """What the PDF's Info dictionary says; unreadable metadata is skipped, never fatal."""
    try:
        raw = pdf.get_metadata_dict(skip_empty=True)
    except Exception:  # pdfium may reject broken Info dictionaries; text still matters more
        return {}
    metadata: dict[str, Any] = {}
    for key, name in _METADATA_KEYS.items():
        value = clean_text(str(raw.get(key, "")))
        if value:
            metadata[name] = value
    for key, name in _DATE_KEYS.items():
        date = parse_pdf_date(str(raw.get(key, "")))
        if date is not None:
            metadata[name] = date.isoformat()
    return metadata


def parse_pdf_date(value: str) -> datetime | None:
    """Parse a PDF date ("D:20230227044202+11'00'"); None when it is not a real date."""
    match = _PDF_DATE.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, zulu, sign, tz_hours, tz_minutes = match.groups()
    try:
        tz: timezone | None = None
        if zulu:
            tz = UTC
        elif sign:
            offset = timedelta(hours=int(tz_hours), minutes=int(tz_minutes or 0))
            tz = timezone(-offset if sign == "-" else offset)
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None
