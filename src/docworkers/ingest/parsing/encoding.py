"""Turn the bytes of a text or HTML file into ``str`` without ever guessing silently.

The order is: byte-order mark, BOM-less UTF-16/32 (recognised by its NUL-byte pattern), strict
UTF-8, then charset-normalizer. Nothing is decoded with ``errors="ignore"`` or ``"replace"``: a
file that fits no encoding is reported as corrupt, so the index never holds mojibake or text with
holes that nobody asked for.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

from docworkers.errors import CorruptDocumentError

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# A well-formed UTF-8 sequence of two to four bytes (RFC 3629), to tell "UTF-8 with a few damaged
# bytes" from a legacy single-byte encoding, where such pairs are very rare.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)

# WHATWG maps these labels to windows-1252, which is what such pages really contain.
_HTML_LABEL_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
    "x-sjis": "shift_jis",
}
_SNIFF_CONTROL_LIMIT = 0.02  # share of control characters above which a sample is binary
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_UNDECODABLE = (
    "is not valid text in any known encoding; save it as UTF-8 (for example with "
    "'Save as… > Encoding: UTF-8' in your editor) and upload it again."
)


def decode_text(data: bytes, filename: str) -> tuple[str, str]:
    """Decode a whole text file; returns (text, encoding) or raises CorruptDocumentError."""
    return _decode(data, filename, partial=False)


def decode_html(data: bytes, filename: str) -> tuple[str, str]:
    """Like :func:`decode_text`, but a ``<meta charset>`` declaration beats detection."""
    if data.startswith(tuple(bom for bom, _ in _BOMS)):
        return _decode(data, filename, partial=False)
    declared = _declared_charset(data[:4096])
    if declared is not None:
        try:
            return data.decode(declared), declared
        except UnicodeDecodeError:
            pass  # the declaration lies (common on old pages): fall back to detection
    return _decode(data, filename, partial=False)


def sniff_text(head: bytes) -> str | None:
    """The decoded start of a file if it looks like text, or None if it looks binary.

    ``head`` may end in the middle of a multi-byte character; that is not held against it.
    """
    try:
        text, _ = _decode(head, "", partial=True)
    except CorruptDocumentError:
        return None
    if not text:
        return text
    controls = sum(1 for ch in text if ch < " " and ch not in _ALLOWED_CONTROLS)
    return None if controls / len(text) > _SNIFF_CONTROL_LIMIT else text


def _decode(data: bytes, filename: str, *, partial: bool) -> tuple[str, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _strict(data[len(bom) :], encoding, filename, partial), encoding
    wide = _bomless_utf16_32(data)
    if wide is not None:
        try:
            return _strict(data, wide, filename, partial), wide
        except CorruptDocumentError:
            pass  # the NUL pattern was a coincidence: try the other encodings
    try:
        return _incremental(data, "utf-8", partial), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    damaged = _damaged_utf8_bytes(data)
    if damaged is not None:
        if partial:  # sniffing only classifies the file; the full decode will reject it
            return data.decode("utf-8", errors="replace"), "utf-8"
        raise CorruptDocumentError(
            filename,
            f"is UTF-8 text with {damaged} invalid byte(s), the first at offset "
            f"{utf8_error.start}; the file is damaged or mixes encodings. Re-save it as UTF-8 "
            "and upload it again.",
        )
    return _detect(data, filename)


def _strict(data: bytes, encoding: str, filename: str, partial: bool) -> str:
    try:
        return _incremental(data, encoding, partial)
    except UnicodeDecodeError as exc:
        raise CorruptDocumentError(
            filename,
            f"starts like {encoding} text but has invalid bytes at offset {exc.start}; "
            "the file is damaged. Save it again as UTF-8 and upload it again.",
        ) from None


def _incremental(data: bytes, encoding: str, partial: bool) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    return decoder.decode(data, final=not partial)


def _bomless_utf16_32(data: bytes) -> str | None:
    """Spot UTF-16/32 without a BOM by where the NUL bytes sit (mostly-Latin text only)."""
    sample = data[:4096]
    size = len(sample) - len(sample) % 4
    if size < 8:
        return None
    zeros = [sample[lane:size:4].count(0) / (size // 4) for lane in range(4)]
    if zeros[2] > 0.9 and zeros[3] > 0.9 and zeros[0] < 0.1:
        return "utf-32-le"
    if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[3] < 0.1:
        return "utf-32-be"
    if zeros[1] > 0.7 and zeros[3] > 0.7 and zeros[0] < 0.1 and zeros[2] < 0.1:
        return "utf-16-le"
    if zeros[0] > 0.7 and zeros[2] > 0.7 and zeros[1] < 0.1 and zeros[3] < 0.1:
        return "utf-16-be"
    return None


def _damaged_utf8_bytes(data: bytes) -> int | None:
    """How many bytes break the UTF-8 of mostly-UTF-8 data; None if it is not mostly UTF-8.

    A legacy single-byte text almost never contains valid multi-byte UTF-8 sequences, so when
    they make up most of the non-ASCII bytes, the file is damaged UTF-8, not cp1252 or similar.
    """
    valid = sum(len(m) for m in _UTF8_MULTIBYTE.findall(data))
    high = len(_HIGH_BYTE.findall(data))
    return high - valid if valid and valid * 2 >= high else None


def _detect(data: bytes, filename: str) -> tuple[str, str]:
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise CorruptDocumentError(filename, _UNDECODABLE)
    encoding = best.encoding
    # Short Western texts fit several code pages equally well; browsers and editors default to
    # windows-1252 there, and picking cp1250 would turn "niño" into "nińo".
    if "cp1252" in best.could_be_from_charset or any(
        m.encoding == "cp1252" and m.chaos <= best.chaos + 0.01 for m in matches
    ):
        encoding = "cp1252"
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError:
        raise CorruptDocumentError(filename, _UNDECODABLE) from None


def _declared_charset(head: bytes) -> str | None:
    found = _META_CHARSET.search(head)
    if found is None:
        return None
    label = found.group(1).decode("ascii").lower()
    label = _HTML_LABEL_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # Per the HTML standard a meta tag cannot switch to UTF-16/32: the bytes would not have
    # been readable as ASCII to find it. Such a label means UTF-8.
    return "utf-8" if name.startswith(("utf-16", "utf-32")) else name
