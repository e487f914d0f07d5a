"""Small helpers shared by the format parsers: deadline, text clean-up, size caps, and the
reason given when a file's library cannot read it."""

from __future__ import annotations

import re
import time
from datetime import datetime

from docworkers.errors import CorruptDocumentError, ParseTimeoutError

# C0 controls other than tab and newline (and DEL) carry no text; pdfium also emits U+FFFE
# where it joined a word hyphenated across lines ("ef\ufffeficient"), so dropping it rejoins it.
_DROP = {c: None for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)}
_DROP.update({0xFFFE: None, 0xFFFF: None})
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


class Deadline:
    """A cooperative time limit: parsers call :meth:`check` between pages or blocks."""

    __slots__ = ("_at", "_filename", "_seconds")

    def __init__(self, seconds: float | None, filename: str) -> None:
        self._seconds = seconds
        self._at = None if seconds is None else time.monotonic() + seconds
        self._filename = filename

    def check(self) -> None:
        if self._at is not None and time.monotonic() > self._at:
            raise ParseTimeoutError(self._filename, timeout_reason(self._seconds or 0.0))

    def extend(self, seconds: float) -> None:
        """Allow ``seconds`` more: OCR, once a document needs it, has its own time budget."""
        if self._at is not None:
            self._at += seconds
            self._seconds = (self._seconds or 0.0) + seconds


def timeout_reason(seconds: float) -> str:
    return (
        f"parsing did not finish within the {seconds:g} s limit; the file is unusually large "
        "or complex. Split it into smaller files, or ask an administrator to raise the limit."
    )


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def clean_text(text: str) -> str:
    """Unify line ends, drop invisible control characters and blank-line runs."""
    text = normalize_newlines(text).translate(_DROP)
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def summary(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters) for error reasons."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message[:200]}" if message else type(exc).__name__


def damaged(filename: str, what: str, exc: BaseException, repair: str) -> CorruptDocumentError:
    """The error for a file its library could not read (libraries raise many types for damaged
    files): ``the <what> is damaged and could not be read (<summary>). <repair>``."""
    return CorruptDocumentError(
        filename, f"the {what} is damaged and could not be read ({summary(exc)}). {repair}"
    )
