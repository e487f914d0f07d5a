"""OLE2 compound files (.doc, .xls, .msg, .ppt): open them safely and tell them apart.

All legacy Office formats share the OLE2 container, so the signature alone does not say what a
file is; the names of its streams do: ``WordDocument`` (Word), ``Workbook``/``Book`` (Excel),
``__substg1.0_*`` property streams (Outlook), ``PowerPoint Document``. A password-protected
DOCX/XLSX/PPTX is also an OLE2 file, holding ``EncryptionInfo`` and ``EncryptedPackage``.
"""

from __future__ import annotations

from pathlib import Path

import olefile

from docworkers.errors import (
    EncryptedDocumentError,
    UnsupportedDocumentTypeError,
)
from docworkers.ingest.parsing._common import damaged

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
OLE_KINDS = ("doc", "xls", "msg")
# Directory entries store names in UTF-16LE: findable in the first bytes of small files.
_HEAD_MARKERS: tuple[tuple[bytes, str], ...] = (
    ("WordDocument".encode("utf-16-le"), "doc"),
    ("Workbook".encode("utf-16-le"), "xls"),
    ("__substg1.0_".encode("utf-16-le"), "msg"),
    ("PowerPoint Document".encode("utf-16-le"), "ppt"),
)
_PPT = (
    "is a legacy PowerPoint presentation (.ppt), which is not supported; open it in "
    "PowerPoint or LibreOffice, save it as .pptx or PDF and upload that."
)
_ENCRYPTED = (
    "the file is protected with a password, so its text cannot be read. Remove the password "
    "(save an unprotected copy) and upload that."
)


def kind_from_head(head: bytes, extension: str) -> str | None:
    """The OLE kind ("doc", "xls", "msg" or "ppt") named by directory entries within
    ``head``, else the one ``extension`` promises (the parser checks the streams again); None
    when neither says."""
    for marker, kind in _HEAD_MARKERS:
        if marker in head:
            return kind
    return {".doc": "doc", ".dot": "doc", ".xls": "xls", ".msg": "msg"}.get(extension)


def open_ole(path: Path, filename: str) -> olefile.OleFileIO:
    """The compound file at ``path``; CorruptDocumentError when its structure is damaged."""
    try:
        return olefile.OleFileIO(str(path))
    except Exception as exc:  # olefile raises OSError, struct.error, IndexError, ...
        raise damaged(filename, "legacy Office file", exc, "Open it in Office or LibreOffice, "
                      "save it again (as .docx, .xlsx or PDF) and upload that.") from None


def ole_kind(ole: olefile.OleFileIO, filename: str) -> str:
    """"doc", "xls" or "msg" from the streams; typed errors for the OLE files we do not read."""
    if ole.exists("EncryptedPackage") or ole.exists("EncryptionInfo"):
        raise EncryptedDocumentError(filename, _ENCRYPTED)
    if ole.exists("WordDocument"):
        return "doc"
    if ole.exists("Workbook") or ole.exists("Book"):
        return "xls"
    if ole.exists("__properties_version1.0") or any(
        entry[0].startswith("__substg1.0_") for entry in ole.listdir(streams=True, storages=False)
    ):
        return "msg"
    if ole.exists("PowerPoint Document"):
        raise UnsupportedDocumentTypeError(filename, _PPT)
    raise UnsupportedDocumentTypeError(
        filename,
        "is an OLE2 compound file that is not a Word, Excel or Outlook document (for example "
        "a Visio, Publisher or installer file), which is not supported; export it as PDF.",
    )


def encrypted_reason() -> str:
    return _ENCRYPTED


def ppt_reason() -> str:
    return _PPT
