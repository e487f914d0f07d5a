"""The in-process entry point: check size, detect the kind, hand over to the format parser."""

from __future__ import annotations

from pathlib import Path

from docworkers.errors import ConfigurationError, DocumentTooLargeError, EmptyDocumentError
from docworkers.ingest.document import ParsedDocument
from docworkers.ingest.parsing._common import Deadline, megabytes
from docworkers.ingest.parsing.detect import HEAD_BYTES, detect_kind
from docworkers.ingest.parsing.docx import parse_docx
from docworkers.ingest.parsing.formats import OTHER_KINDS, parse_other
from docworkers.ingest.parsing.html import parse_html
from docworkers.ingest.parsing.limits import DEFAULT_LIMITS, ParseLimits
from docworkers.ingest.parsing.ocr import DEFAULT_OCR, OcrMode, check_mode
from docworkers.ingest.parsing.pdf import parse_pdf
from docworkers.ingest.parsing.text import parse_text


def parse_document(
    path: Path,
    *,
    filename: str | None = None,
    max_pages: int = 0,
    limits: ParseLimits = DEFAULT_LIMITS,
    ocr: OcrMode = DEFAULT_OCR,
    attachments_dir: Path | None = None,
) -> ParsedDocument:
    """Parse the file at ``path`` in this process and return its text by page.

    ``filename`` is the name the user gave the file (used in error messages and as the
    extension tie-break; defaults to ``path.name``). ``max_pages`` > 0 keeps only the first
    pages of a PDF and sets ``truncated``. ``ocr`` says which PDF pages OCR reads: ``auto``
    (those without a text layer), ``always`` or ``never``. The time limit is checked between
    pages only; use :class:`~docworkers.ingest.parsing.IsolatedParser` to enforce time and
    memory limits hard. ``attachments_dir``: where an email's attachments are saved (see
    :mod:`~docworkers.ingest.parsing.mail`; None lists them only).
    Raises a :class:`~docworkers.errors.DocumentError` subclass for every problem with the file.
    """
    name = filename or path.name
    return parse_with_deadline(
        path, name, max_pages, limits, Deadline(limits.timeout_seconds, name), ocr=ocr,
        attachments_dir=attachments_dir,
    )


def parse_with_deadline(
    path: Path, filename: str, max_pages: int, limits: ParseLimits, deadline: Deadline,
    *, ocr: OcrMode = DEFAULT_OCR, attachments_dir: Path | None = None,
) -> ParsedDocument:
    """:func:`parse_document` with an explicit deadline (the isolated child passes none)."""
    if not isinstance(max_pages, int) or isinstance(max_pages, bool) or max_pages < 0:
        raise ConfigurationError("max_pages", f"must be an integer >= 0, got {max_pages!r}")
    ocr = check_mode(ocr)
    size = path.stat().st_size
    if size == 0:
        raise EmptyDocumentError(
            filename, "the file is empty (0 bytes); check that the upload finished and retry."
        )
    _check_size(size, filename, limits)
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
        kind = detect_kind(head, filename)
        if kind == "pdf":
            document = parse_pdf(path, filename, max_pages, limits, deadline, ocr)
        elif kind == "docx":
            document = parse_docx(path, filename, limits, deadline)
        elif kind in OTHER_KINDS:
            document = parse_other(path, filename, kind, limits, deadline, attachments_dir)
        else:
            file.seek(0)  # one read, not head + rest: that would hold the file twice
            data = file.read(size)  # read(n) allocates n bytes up front: never pass the limit
            if kind == "html":
                document = parse_html(data, filename, limits, deadline)
            else:
                document = parse_text(data, filename, kind, limits)
    return document


def _check_size(size: int, filename: str, limits: ParseLimits) -> None:
    if size > limits.max_file_bytes:
        raise DocumentTooLargeError(
            filename,
            f"the file is {megabytes(size)}, more than the {megabytes(limits.max_file_bytes)} "
            "limit; split it into smaller files and upload those.",
        )
