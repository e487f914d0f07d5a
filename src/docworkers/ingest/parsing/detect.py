"""Decide what kind of document a file is, from its content first and its name second.

Binary formats are recognised by their signature, whatever the file is called: PDF bytes named
``.docx`` are parsed as a PDF. Text is different: any source file, config file or log is "text",
and the corpus README lists Go, YAML and XSL sources and an extension-less file as unsupported. So
text is accepted only under an extension that says "document" (:data:`TEXT_EXTENSIONS`,
:data:`MARKDOWN_EXTENSIONS`, :data:`HTML_EXTENSIONS`, ``.csv``, ``.eml``), or when it plainly
is an HTML page. Legacy Office files share one container (OLE2): the names of its streams say
which it is (:mod:`~docworkers.ingest.parsing.ole`); the parser checks them again in full.
"""

from __future__ import annotations

import re

from docworkers.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    UnsupportedDocumentTypeError,
)
from docworkers.ingest.parsing.encoding import sniff_text
from docworkers.ingest.parsing.ole import (
    OLE_SIGNATURE,
    encrypted_reason,
    kind_from_head,
    ppt_reason,
)

KINDS = ("pdf", "docx", "html", "markdown", "text", "csv", "doc", "xls", "xlsx", "pptx",
         "eml", "msg")
TEXT_EXTENSIONS = frozenset({".txt", ".text", ".rst", ".log"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
CSV_EXTENSIONS = frozenset({".csv"})
EMAIL_EXTENSIONS = frozenset({".eml"})
OFFICE_EXTENSIONS = frozenset({".pdf", ".docx", ".doc", ".xls", ".xlsx", ".pptx", ".msg"})
#: Every extension a document may have (uploads, bulk imports, email attachments).
DOCUMENT_EXTENSIONS = (TEXT_EXTENSIONS | MARKDOWN_EXTENSIONS | HTML_EXTENSIONS | CSV_EXTENSIONS
                       | EMAIL_EXTENSIONS | OFFICE_EXTENSIONS)
HEAD_BYTES = 64 * 1024  # what callers should pass as ``head``

_SUPPORTED = (
    "PDF, DOCX, DOC, XLSX, XLS, CSV, PPTX, EML, MSG, HTML, Markdown (.md) and plain text (.txt)"
)
_CONVERT = "open it in Word or LibreOffice and save it as .docx or PDF"
_IMAGE = (
    "is an image ({}); text cannot be read from images because OCR is not supported. "
    "Upload the document as PDF or DOCX with real text instead."
)
_ARCHIVE = "is a compressed archive ({}); extract it and upload the documents inside one by one."
_PROGRAM = "is an executable program ({}), not a document."
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"{\\rtf", f"is an RTF document, which is not supported; {_CONVERT}."),
    (b"\x89PNG\r\n\x1a\n", _IMAGE.format("PNG")),
    (b"\xff\xd8\xff", _IMAGE.format("JPEG")),
    (b"GIF87a", _IMAGE.format("GIF")),
    (b"GIF89a", _IMAGE.format("GIF")),
    (b"II*\x00", _IMAGE.format("TIFF")),
    (b"MM\x00*", _IMAGE.format("TIFF")),
    (b"\x1f\x8b", _ARCHIVE.format("gzip")),
    (b"7z\xbc\xaf\x27\x1c", _ARCHIVE.format("7-Zip")),
    (b"Rar!\x1a\x07", _ARCHIVE.format("RAR")),
    (b"\xfd7zXZ\x00", _ARCHIVE.format("xz")),
    (b"\x28\xb5\x2f\xfd", _ARCHIVE.format("zstd")),
    (b"\x7fELF", _PROGRAM.format("ELF")),
)
_ZIP_KINDS: tuple[tuple[bytes, str], ...] = (
    (
        b"mimetypeapplication/vnd.oasis.opendocument",
        f"is an OpenDocument file, which is not supported; {_CONVERT}.",
    ),
    (
        b"mimetypeapplication/epub+zip",
        "is an EPUB e-book, which is not supported; convert it to PDF.",
    ),
)
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_HTML_START = re.compile(r"<(?:!doctype\s+html|html|head|body)[\s>/]")


def detect_kind(head: bytes, filename: str) -> str:
    """Return one of :data:`KINDS` for a file starting with ``head``.

    Raises EmptyDocumentError for an empty file, UnsupportedDocumentTypeError for formats we do
    not read, and CorruptDocumentError when the name promises PDF/DOCX but the content is
    unrecognisable binary (a damaged download, most likely).
    """
    if not head:
        raise EmptyDocumentError(
            filename, "the file is empty (0 bytes); check that the upload finished and retry."
        )
    ext = extension(filename)
    if b"%PDF-" in head[:1024]:  # pdfium, like Acrobat, tolerates junk before the header
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(head, filename, ext)
    if head.startswith(OLE_SIGNATURE):
        if _ENCRYPTED_PACKAGE in head:  # a password-protected DOCX, XLSX or PPTX
            raise EncryptedDocumentError(filename, encrypted_reason())
        kind = kind_from_head(head, ext)
        if kind == "ppt":
            raise UnsupportedDocumentTypeError(filename, ppt_reason())
        if kind is None:
            raise UnsupportedDocumentTypeError(
                filename, "is a legacy Microsoft Office file of a type we do not read (an "
                f"OLE2 file that is no .doc, .xls or .msg); supported are {_SUPPORTED}.",
            )
        return kind
    for magic, reason in _SIGNATURES:
        if head.startswith(magic):
            raise UnsupportedDocumentTypeError(filename, reason)
    sample = sniff_text(head)
    if sample is None:
        if ext in OFFICE_EXTENSIONS | CSV_EXTENSIONS | EMAIL_EXTENSIONS:
            raise CorruptDocumentError(
                filename,
                f"is named {ext} but its content is not {_a(ext[1:].upper())} file; it is "
                "damaged or was saved in another format. Download or export it again.",
            )
        raise UnsupportedDocumentTypeError(
            filename, f"contains binary data in an unknown format; supported are {_SUPPORTED}."
        )
    if ext in HTML_EXTENSIONS or _looks_like_html(sample):
        return "html"
    if ext in MARKDOWN_EXTENSIONS:
        return "markdown"
    if ext in CSV_EXTENSIONS:
        return "csv"
    if ext in EMAIL_EXTENSIONS:
        return "eml"
    if ext in TEXT_EXTENSIONS:
        return "text"
    if not ext:
        reason = "has no file extension, so its type is unknown"
    elif ext in OFFICE_EXTENSIONS:
        reason = f"is named {ext} but contains plain text, not a {ext[1:].upper()} document"
    else:
        reason = f"has the extension {ext}, which is not a supported document type"
    raise UnsupportedDocumentTypeError(
        filename,
        f"{reason}. Supported are {_SUPPORTED}; if the file is prose meant for search, rename it "
        "to .txt or .md and upload it again.",
    )


def extension(filename: str) -> str:
    """The lower-cased extension of ``filename`` ("" if none); handles / and \\ paths."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return f".{ext.lower()}" if dot and stem and ext else ""


def _zip_kind(head: bytes, filename: str, ext: str) -> str:
    if b"word/" in head:
        return "docx"
    if b"xl/" in head:
        return "xlsx"
    if b"ppt/" in head:
        return "pptx"
    for marker, reason in _ZIP_KINDS:
        if marker in head:
            raise UnsupportedDocumentTypeError(filename, reason)
    if ext in {".docx", ".xlsx", ".pptx"}:  # first members large (e.g. a thumbnail)
        return ext[1:]
    raise UnsupportedDocumentTypeError(
        filename, "is a ZIP archive, not a document; extract it and upload the documents inside."
    )


def _a(name: str) -> str:
    """``name`` with its article, as said aloud: "a PDF", "an XLSX", "an EML"."""
    return f"{'an' if name[:1] in 'AEFHILMNORSX' else 'a'} {name}"


def _looks_like_html(sample: str) -> bool:
    """True if the text starts, after an XML declaration and comments, with an HTML tag."""
    text = sample[:8192].lstrip("\ufeff \t\r\n").lower()
    while text.startswith(("<?", "<!--")):
        end = text.find("?>" if text.startswith("<?") else "-->")
        if end < 0:
            return False
        text = text[end + (2 if text.startswith("<?") else 3) :].lstrip()
    return _HTML_START.match(text) is not None
