"""Outlook messages (.msg): the MAPI property streams of the OLE2 file, read with olefile.

A .msg stores each variable-length property in a stream ``__substg1.0_<id><type>`` (type
``001F`` UTF-16LE text, ``001E`` 8-bit text, ``0102`` binary) and the fixed-size ones (dates)
in ``__properties_version1.0``; each attachment is a storage ``__attach_version1.0_#<n>``
with its file name and data as properties. (MS-OXMSG; extract-msg, the usual library, is GPL.)
"""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path
from typing import Any

from docworkers.errors import DocumentError, EncryptedDocumentError
from docworkers.ingest.document import ParsedDocument
from docworkers.ingest.parsing._common import Deadline, damaged
from docworkers.ingest.parsing.eml import read_mime
from docworkers.ingest.parsing.html import parse_html
from docworkers.ingest.parsing.limits import ParseLimits
from docworkers.ingest.parsing.mail import (
    MAX_ATTACHMENTS,
    Attachment,
    Email,
    attachment_name,
    email_document,
)

_SUBJECT, _SENDER_NAME, _SENDER_EMAIL, _SENDER_SMTP = 0x0037, 0x0C1A, 0x0C1F, 0x5D01
_DISPLAY_TO, _DISPLAY_CC, _BODY, _HTML, _CLASS = 0x0E04, 0x0E03, 0x1000, 0x1013, 0x001A
_SUBMIT_TIME, _DELIVERY_TIME = 0x0039, 0x0E06
_ATTACH_LONG_NAME, _ATTACH_NAME, _ATTACH_DISPLAY = 0x3707, 0x3704, 0x3001
_ATTACH_DATA, _ATTACH_MIME = 0x3701, 0x370E
_PT_UNICODE, _PT_STRING8, _PT_BINARY = 0x001F, 0x001E, 0x0102
_PT_OBJECT, _PT_SYSTIME = 0x000D, 0x0040
_ENCRYPTED_MIME = frozenset({"application/pgp-encrypted", "application/pkcs7-mime",
                             "application/x-pkcs7-mime"})
_ENCRYPTED = ("the Outlook message is encrypted (S/MIME or PGP), so its text cannot be read. "
              "Decrypt it in Outlook, save it again and upload that.")
_REPAIR = "Open it in Outlook, save it again as .msg (or .eml) and upload that."


def parse_msg(
    ole: Any, filename: str, limits: ParseLimits, deadline: Deadline,
    attachments_dir: Path | None,
) -> ParsedDocument:  # fmt: skip
    """Parse the Outlook message ``ole`` (an open olefile)."""
    try:
        reader = _Properties(ole, "", limits)
        message_class = reader.text(_CLASS).upper()
        signed = message_class.startswith("IPM.NOTE.SMIME.MULTIPARTSIGNED")
        if message_class.startswith(("IPM.NOTE.SMIME", "IPM.NOTE.PGP")) and not signed:
            raise EncryptedDocumentError(filename, _ENCRYPTED)
        attachments = _attachments(ole, limits, filename)
        deadline.check()
        inner = _signed_content(attachments, filename, limits, deadline) if signed else None
        if inner is not None:  # the text and attachments are in the signed MIME message
            attachments = inner[1]
        sender = reader.text(_SENDER_NAME)
        address = reader.text(_SENDER_EMAIL) or reader.text(_SENDER_SMTP)
        if address and address not in sender:
            sender = f"{sender} <{address}>" if sender else address
        mail = Email(
            subject=reader.text(_SUBJECT), sender=sender, to=reader.text(_DISPLAY_TO),
            cc=reader.text(_DISPLAY_CC), date=reader.date(_SUBMIT_TIME, _DELIVERY_TIME),
            body=reader.text(_BODY) or _html_body(reader, filename, limits, deadline)
            or (inner[0].body if inner is not None else ""),
        )  # fmt: skip
    except DocumentError:
        raise
    except Exception as exc:  # olefile and struct raise many types for damaged files
        raise damaged(filename, "Outlook message", exc, _REPAIR) from None
    return email_document(filename, "msg", mail, attachments, limits, attachments_dir)


class _Properties:
    """The MAPI properties of the message or of one attachment (``storage`` is its prefix)."""

    def __init__(self, ole: Any, storage: str, limits: ParseLimits) -> None:
        self.ole = ole
        self.prefix = f"{storage}/" if storage else ""
        self.limits = limits

    def raw(self, prop: int, kind: int) -> bytes | None:
        name = f"{self.prefix}__substg1.0_{prop:04X}{kind:04X}"
        if not self.ole.exists(name):
            return None
        if self.ole.get_size(name) > self.limits.max_file_bytes:
            raise ValueError(f"property stream {name} larger than the file limit")
        return bytes(self.ole.openstream(name).read())

    def text(self, prop: int) -> str:
        unicode = self.raw(prop, _PT_UNICODE)
        if unicode is not None:
            return unicode.decode("utf-16-le", "replace").rstrip("\x00")
        eight_bit = self.raw(prop, _PT_STRING8)
        if eight_bit is None:
            return ""
        try:
            return eight_bit.decode("utf-8").rstrip("\x00")
        except UnicodeDecodeError:
            return eight_bit.decode("cp1252", "replace").rstrip("\x00")

    def date(self, *props: int) -> str:
        """The first of ``props`` found among the fixed-size properties, as ISO 8601."""
        name = f"{self.prefix}__properties_version1.0"
        if not self.ole.exists(name) or self.ole.get_size(name) > 1 << 20:
            return ""
        data = bytes(self.ole.openstream(name).read())
        header = 32 if not self.prefix else 8  # the top-level message has the longer header
        values: dict[int, int] = {}
        for at in range(header, len(data) - 15, 16):
            tag, _flags, value = struct.unpack_from("<IIQ", data, at)
            if tag & 0xFFFF == _PT_SYSTIME:
                values[tag >> 16] = value
        for prop in props:
            if values.get(prop):
                when = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
                try:
                    return (when + dt.timedelta(microseconds=values[prop] // 10)).isoformat()
                except OverflowError:
                    return ""
        return ""


def _signed_content(
    attachments: list[Attachment], filename: str, limits: ParseLimits, deadline: Deadline
) -> tuple[Email, list[Attachment]] | None:
    """A clear-signed message keeps its MIME form (text, attachments, signature) in one
    attachment, usually ``smime.p7m``: read it as an email."""
    for item in attachments:
        if item.data is not None and item.filename.lower().endswith(".p7m"):
            return read_mime(item.data, filename, limits, deadline)
    return None


def _html_body(reader: _Properties, filename: str, limits: ParseLimits, deadline: Deadline) -> str:
    html = reader.raw(_HTML, _PT_BINARY)
    if not html:
        return ""
    try:
        return parse_html(html, filename, limits, deadline).text
    except DocumentError:
        return ""


def _attachments(ole: Any, limits: ParseLimits, filename: str) -> list[Attachment]:
    storages = sorted({
        entry[0] for entry in ole.listdir(streams=True, storages=True)
        if len(entry) > 1 and entry[0].startswith("__attach_version1.0_#")
    })  # fmt: skip
    found: list[Attachment] = []
    for number, storage in enumerate(storages[: MAX_ATTACHMENTS + 1], 1):
        props = _Properties(ole, storage, limits)
        name = attachment_name(
            props.text(_ATTACH_LONG_NAME) or props.text(_ATTACH_NAME)
            or props.text(_ATTACH_DISPLAY), f"attachment-{number}",
        )  # fmt: skip
        if props.text(_ATTACH_MIME).lower() in _ENCRYPTED_MIME:
            raise EncryptedDocumentError(filename, _ENCRYPTED)
        data = props.raw(_ATTACH_DATA, _PT_BINARY)
        if data is None:
            reason = ("an embedded Outlook item: not extracted"
                      if ole.exists(f"{storage}/__substg1.0_{_ATTACH_DATA:04X}{_PT_OBJECT:04X}")
                      else "a link or an embedded object without data: not extracted")  # fmt: skip
            found.append(Attachment(name, None, reason))
        else:
            found.append(Attachment(name, data))
    return found
