"""Legacy Word (.doc): text by ``antiword``, or from the piece table when antiword refuses.

antiword (Debian package ``antiword``, installed by ``.ci/run``) reads Word 2 to 2003 and lays
tables out as ``|cell|cell|`` lines, which become Markdown tables. It runs as a subprocess of
the isolated parser child, with a timeout inside the child's own and a CPU-time limit set on
the process itself, so a spinning antiword dies even when the child is killed first. It
refuses some small Word 97+ files ("the text stream of this file is too small to handle", 3
of the corpus's 4 .doc files); those are read from the document's piece table, which is how
Word 97 and later store their text: (character position, file offset) pieces of cp1252 or
UTF-16 text in the ``WordDocument`` stream.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

from docworkers.errors import (
    CorruptDocumentError,
    EncryptedDocumentError,
    NoExtractableTextError,
)
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.parsing._common import Deadline, clean_text
from docworkers.ingest.parsing.limits import ParseLimits
from docworkers.ingest.parsing.ole import encrypted_reason
from docworkers.ingest.parsing.tables import markdown_table

ANTIWORD = "antiword"
_WORD_MAGIC = 0xA5EC
_F_ENCRYPTED, _F_WHICH_TABLE = 0x0100, 0x0200
_FIELD_BEGIN, _FIELD_SEPARATOR, _FIELD_END = "\x13", "\x14", "\x15"
_REPAIR = "Open it in Word or LibreOffice, save it as .docx and upload that."
# Word's special characters: paragraph/cell/row marks, breaks, hyphens, embedded objects.
_SPECIAL = {
    "\r": "\n", "\x07": "\t", "\x0b": "\n", "\x0c": "\n\n", "\x0e": "\n",
    "\x1e": "-", "\x1f": "", "\x01": "", "\x08": "", "\x02": "", "\x05": "",
}  # fmt: skip


def parse_doc(
    path: Path, filename: str, ole: Any, limits: ParseLimits, deadline: Deadline
) -> ParsedDocument:
    """Parse the Word document ``ole`` (an open olefile of ``path``)."""
    word = _stream(ole, "WordDocument", filename, limits)
    if len(word) < 0x1AA or struct.unpack_from("<H", word, 0)[0] != _WORD_MAGIC:
        raise CorruptDocumentError(filename, f"the Word file's header is damaged. {_REPAIR}")
    flags = struct.unpack_from("<H", word, 0x0A)[0]
    if flags & _F_ENCRYPTED:
        raise EncryptedDocumentError(filename, encrypted_reason())
    text = _antiword(path, limits)
    extracted_by = "antiword"
    if text is None:
        deadline.check()
        table = "1Table" if flags & _F_WHICH_TABLE else "0Table"
        text = _piece_table_text(word, _stream(ole, table, filename, limits), filename)
        extracted_by = "piece_table"
    text = clean_text(text)
    if not text:
        raise NoExtractableTextError(
            filename, "the Word document contains no text (it may hold only images)."
        )
    truncated = len(text) > limits.max_chars
    metadata: dict[str, Any] = {"extracted_by": extracted_by, **_summary_metadata(ole)}
    return ParsedDocument(filename, "doc", [Page(text[: limits.max_chars])], metadata, truncated)


def _stream(ole: Any, name: str, filename: str, limits: ParseLimits) -> bytes:
    try:
        if ole.get_size(name) > limits.max_file_bytes:
            raise CorruptDocumentError(filename, f"the Word file's {name} stream is larger "
                                       f"than the file itself. {_REPAIR}")  # fmt: skip
        return bytes(ole.openstream(name).read())
    except CorruptDocumentError:
        raise
    except Exception:  # a missing or broken stream
        raise CorruptDocumentError(
            filename, f"the Word file's {name} stream is missing or damaged. {_REPAIR}"
        ) from None


def _antiword(path: Path, limits: ParseLimits) -> str | None:
    """antiword's text with tables as Markdown; None when antiword is absent or refuses."""
    program = shutil.which(ANTIWORD)
    if program is None:
        return None
    timeout = max(1.0, min(limits.timeout_seconds * 0.8, limits.timeout_seconds - 2.0))
    try:
        process = subprocess.Popen(
            [program, "-w", "0", "-m", "UTF-8.txt", "--", str(path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
        )  # fmt: skip
    except OSError:
        return None
    with process:
        try:  # a CPU limit the kernel enforces even if our process is killed meanwhile
            seconds = math.ceil(timeout)
            resource.prlimit(process.pid, resource.RLIMIT_CPU, (seconds, seconds + 1))
        except (OSError, ValueError):
            pass  # the process ended already
        try:
            stdout, _stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return None
    if process.returncode != 0:
        return None
    return _tables_as_markdown(stdout.decode("utf-8", "replace"))


def _tables_as_markdown(text: str) -> str:
    """antiword draws a table as lines ``|cell  |cell  |``; those runs become Markdown tables."""
    out: list[str] = []
    rows: list[list[str]] = []
    for line in [*text.split("\n"), ""]:
        stripped = line.strip()
        if len(stripped) > 1 and stripped.startswith("|") and stripped.endswith("|"):
            rows.append([cell.strip() for cell in stripped[1:-1].split("|")])
            continue
        if rows:
            out.append(markdown_table(rows))
            rows = []
        out.append(line)
    return "\n".join(out)


def _piece_table_text(word: bytes, table: bytes, filename: str) -> str:
    """The main document text (``ccpText`` characters) assembled from the piece table."""
    try:
        ccp_text = struct.unpack_from("<i", word, 0x4C)[0]
        fc_clx, lcb_clx = struct.unpack_from("<II", word, 0x1A2)
        clx = table[fc_clx : fc_clx + lcb_clx]
        at = 0
        while at < len(clx) and clx[at] == 0x01:  # Prc: formatting we do not need
            at += 3 + struct.unpack_from("<H", clx, at + 1)[0]
        if at >= len(clx) or clx[at] != 0x02:
            raise ValueError("no piece table")
        size = struct.unpack_from("<I", clx, at + 1)[0]
        plc = clx[at + 5 : at + 5 + size]
        count = (len(plc) - 4) // 12
        positions = struct.unpack_from(f"<{count + 1}i", plc, 0)
        pieces: list[str] = []
        for n in range(count):
            fc = struct.unpack_from("<I", plc, 4 * (count + 1) + 8 * n + 2)[0]
            chars = positions[n + 1] - positions[n]
            if chars < 0 or chars > len(word):
                raise ValueError("bad piece length")
            if fc & 0x40000000:  # compressed: one cp1252 byte per character
                start = (fc & 0x3FFFFFFF) // 2
                pieces.append(word[start : start + chars].decode("cp1252", "replace"))
            else:
                pieces.append(word[fc : fc + 2 * chars].decode("utf-16-le", "replace"))
    except (struct.error, ValueError) as exc:
        raise CorruptDocumentError(
            filename, f"the Word file's text could not be located ({exc}). {_REPAIR}"
        ) from None
    return _visible("".join(pieces)[: max(ccp_text, 0)])


def _visible(raw: str) -> str:
    """Drop field codes (keep their results) and map Word's control characters."""
    out: list[str] = []
    fields: list[bool] = []  # per open field: still inside its code part
    for char in raw:
        if char == _FIELD_BEGIN:
            fields.append(True)
        elif char == _FIELD_SEPARATOR and fields:
            fields[-1] = False
        elif char == _FIELD_END and fields:
            fields.pop()
        elif not (fields and fields[-1]):
            out.append(_SPECIAL.get(char, char))
    return "".join(out)


def _summary_metadata(ole: Any) -> dict[str, Any]:
    """Title, author and dates from the SummaryInformation stream (when readable)."""
    metadata: dict[str, Any] = {}
    try:
        meta = ole.get_metadata()
    except Exception:  # a damaged property set only costs the metadata
        return metadata
    for name, value in (("title", meta.title), ("author", meta.author),
                        ("subject", meta.subject), ("keywords", meta.keywords)):  # fmt: skip
        if isinstance(value, bytes):
            value = value.decode("cp1252", "replace")
        text = clean_text(str(value or ""))
        if text:
            metadata[name] = text
    for name, value in (("created", meta.create_time), ("modified", meta.last_saved_time)):
        if value is not None and hasattr(value, "isoformat") and value.year > 1601:
            metadata[name] = value.isoformat()
    return metadata
