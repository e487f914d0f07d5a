"""What .eml and .msg have in common: the header block, and attachments saved for fan-out.

An email's attachments become documents of their own: the worker enqueues a child upload for
each one the parser saved (see :mod:`docworkers.ingest.jobs.children`). The parser saves them,
in the isolated child, as ``<sha256><suffix>`` in the folder it is given (the stored email's
own), so a second run writes the same files under the same names, and lists them in
``metadata["attachments"]`` in the email's order (file name, size, sha256; never a path).
Attachments of types we do not read are listed with the reason they were skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docworkers.errors import NoExtractableTextError
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.parsing._common import clean_text
from docworkers.ingest.parsing.detect import DOCUMENT_EXTENSIONS, extension
from docworkers.ingest.parsing.limits import ParseLimits

MAX_ATTACHMENTS = 100
_MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    data: bytes | None  # None: not extracted (see ``skipped``)
    skipped: str = ""


@dataclass(slots=True)
class Email:
    """The parts of a message both formats give."""

    subject: str = ""
    sender: str = ""
    to: str = ""
    cc: str = ""
    date: str = ""  # ISO 8601
    body: str = ""


def email_document(
    filename: str, kind: str, email: Email, attachments: list[Attachment],
    limits: ParseLimits, attachments_dir: Path | None,
) -> ParsedDocument:  # fmt: skip
    """The email as one page (headers, then the body), its attachments saved and listed."""
    listed = [_save(item, attachments_dir, limits) for item in attachments[:MAX_ATTACHMENTS]]
    listed += [{"filename": item.filename, "skipped": f"more than {MAX_ATTACHMENTS} attachments"}
               for item in attachments[MAX_ATTACHMENTS:]]  # fmt: skip
    lines = [f"# {' '.join(email.subject.split())}"] if email.subject.strip() else []
    for label, value in (("From", email.sender), ("To", email.to), ("Cc", email.cc),
                         ("Date", email.date)):  # fmt: skip
        if value.strip():
            lines.append(f"{label}: {' '.join(value.split())}")
    if listed:
        lines.append("Attachments: " + ", ".join(item["filename"] for item in listed))
    body = clean_text(email.body)
    if not body and not email.subject.strip() and not listed:
        raise NoExtractableTextError(filename, "the email has no subject, body or attachment.")
    text = "\n".join(lines) + ("\n\n" + body if body else "")
    truncated = len(text) > limits.max_chars
    metadata: dict[str, Any] = {}
    for name, value in (("title", email.subject), ("author", email.sender),
                        ("created", email.date)):  # fmt: skip
        if value.strip():
            metadata[name] = " ".join(value.split())
    if listed:
        metadata["attachments"] = listed
    return ParsedDocument(filename, kind, [Page(text[: limits.max_chars])], metadata, truncated)


def attachment_name(raw: str | None, fallback: str) -> str:
    """A bare, printable file name for an attachment (never a path)."""
    base = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if base in ("", ".", ".."):
        base = fallback
    if len(base) > _MAX_NAME:
        suffix = extension(base)[:16]
        base = base[: _MAX_NAME - len(suffix)] + suffix
    return base


def _save(item: Attachment, directory: Path | None, limits: ParseLimits) -> dict[str, Any]:
    entry: dict[str, Any] = {"filename": item.filename}
    if item.data is None:
        entry["skipped"] = item.skipped or "not extracted"
        return entry
    entry["size"] = len(item.data)
    suffix = extension(item.filename)
    if suffix not in DOCUMENT_EXTENSIONS:
        entry["skipped"] = "not a supported document type"
    elif not item.data:
        entry["skipped"] = "empty"
    elif len(item.data) > limits.max_file_bytes:
        entry["skipped"] = f"larger than the {limits.max_file_bytes} bytes limit"
    else:
        entry["sha256"] = hashlib.sha256(item.data).hexdigest()
        if directory is not None:
            _write(directory / stored_name(entry["sha256"], item.filename), item.data)
    return entry


def stored_name(sha256: str, filename: str) -> str:
    """The file name an attachment is saved under: ``<sha256><suffix>``, as uploads are."""
    return f"{sha256}{extension(filename)}"


def _write(target: Path, data: bytes) -> None:
    """Store ``data`` at ``target`` unless it is there (same name, same bytes)."""
    directory = target.parent
    if target.is_file() and target.stat().st_size == len(data):
        return
    handle, temp_name = tempfile.mkstemp(dir=directory, prefix=".attachment-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)  # atomic: a reader never sees half a file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
