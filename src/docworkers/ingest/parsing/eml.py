"""Internet mail (.eml, RFC 5322/MIME) with the standard library's ``email`` package.

The body is the plain-text part, else the HTML part's visible text; every part marked as an
attachment (or carrying a file name) outside the body is an attachment, nested messages too.
A message encrypted with S/MIME or PGP is refused: its text cannot be read.
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from docworkers.errors import (
    CorruptDocumentError,
    DocumentError,
    EncryptedDocumentError,
    UnsupportedDocumentTypeError,
)
from docworkers.ingest.document import ParsedDocument
from docworkers.ingest.parsing._common import Deadline, summary
from docworkers.ingest.parsing.html import parse_html
from docworkers.ingest.parsing.limits import ParseLimits
from docworkers.ingest.parsing.mail import Attachment, Email, attachment_name, email_document

_ENCRYPTED_TYPES = frozenset({"multipart/encrypted", "application/pkcs7-mime",
                              "application/x-pkcs7-mime", "application/pgp-encrypted"})
_ENCRYPTED = ("the email is encrypted (S/MIME or PGP), so its text cannot be read. Decrypt it "
              "in your mail program, save it again and upload that.")
_MAX_PARTS = 10_000


def parse_eml(
    data: bytes, filename: str, limits: ParseLimits, deadline: Deadline,
    attachments_dir: Path | None,
) -> ParsedDocument:  # fmt: skip
    """Parse a MIME message; attachments are saved to ``attachments_dir`` when given."""
    mail, attachments = read_mime(data, filename, limits, deadline)
    return email_document(filename, "eml", mail, attachments, limits, attachments_dir)


def read_mime(
    data: bytes, filename: str, limits: ParseLimits, deadline: Deadline
) -> tuple[Email, list[Attachment]]:
    """The headers, body and attachments of a MIME message (also inside a signed .msg)."""
    try:
        message = BytesParser(policy=email.policy.default).parsebytes(data)
        assert isinstance(message, EmailMessage)
        parts = list(message.walk())
        if len(parts) > _MAX_PARTS:
            raise CorruptDocumentError(
                filename, f"the email has {len(parts)} MIME parts, more than a mail program "
                f"would write ({_MAX_PARTS}); it is damaged or hostile.")  # fmt: skip
        _refuse_sealed(parts, filename)
        if not message.keys():
            raise CorruptDocumentError(
                filename, "the file has no email headers (From, To, Subject ...), so it is not "
                "an email or it is damaged; save it again from your mail program.")  # fmt: skip
        body_part = message.get_body(preferencelist=("plain", "html"))
        deadline.check()
        mail = Email(
            subject=_header(message, "subject"), sender=_header(message, "from"),
            to=_header(message, "to"), cc=_header(message, "cc"),
            date=_date(_header(message, "date")),
            body=_body(body_part, filename, limits, deadline),
        )  # fmt: skip
        attachments = _attachments(message, body_part)
    except DocumentError:
        raise
    except Exception as exc:  # malformed headers or encodings deep in the email package
        raise CorruptDocumentError(
            filename, f"the email could not be read ({summary(exc)}); save it again from your "
            "mail program and upload that.",
        ) from None
    return mail, attachments


def _refuse_sealed(parts: list[Any], filename: str) -> None:
    """Encrypted parts (S/MIME enveloped data, PGP) and S/MIME opaque signing hide the text;
    a clear-signed message (multipart/signed) is read as usual."""
    for part in parts:
        content_type = part.get_content_type()
        if content_type not in _ENCRYPTED_TYPES:
            continue
        if str(part.get_param("smime-type") or "").lower() == "signed-data":
            raise UnsupportedDocumentTypeError(
                filename, "the email is S/MIME signed in the opaque form, which wraps its text "
                "in the signature; forward it as a clear-signed or unsigned message and upload "
                "that.",
            )  # fmt: skip
        raise EncryptedDocumentError(filename, _ENCRYPTED)


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    return "" if value is None else str(value)


def _date(value: str) -> str:
    if not value:
        return ""
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError, IndexError):
        return value


def _body(part: Any, filename: str, limits: ParseLimits, deadline: Deadline) -> str:
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown or wrong charset: keep what decodes
        raw = part.get_payload(decode=True)
        content = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_type() == "text/html":
        try:
            return parse_html(content.encode("utf-8"), filename, limits, deadline).text
        except DocumentError:
            return ""  # an HTML body without visible text
    return content


def _attachments(message: EmailMessage, body: Any) -> list[Attachment]:
    found: list[Attachment] = []
    stack: list[Any] = [message]
    while stack:
        part = stack.pop(0)
        if part is body:
            continue
        content_type = part.get_content_type()
        named = part.get_filename()
        if content_type == "message/rfc822":
            inner = part.get_payload(0)
            name = attachment_name(named, f"attached-message-{len(found) + 1}.eml")
            if not name.lower().endswith(".eml"):
                name += ".eml"
            found.append(Attachment(name, bytes(inner)))
        elif part.is_multipart():
            stack[0:0] = list(part.iter_parts())
        elif part.get_content_disposition() == "attachment" or named:
            name = attachment_name(named, f"attachment-{len(found) + 1}")
            payload = part.get_payload(decode=True)
            found.append(Attachment(name, payload if isinstance(payload, bytes) else b""))
    return found
