"""Resource limits for parsing one document, validated once so parsers can trust them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from docworkers.errors import ConfigurationError, one_of
from docworkers.ingest.defaults import OCR_MODES, OcrMode

# Tesseract's names of its language packs ("eng", "chi_sim", "deu"), several joined by "+".
_LANGUAGES = re.compile(r"[A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)*")


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds that keep a hostile or pathological file from taking a worker down.

    ``timeout_seconds`` and ``max_memory_bytes`` are enforced hard only by
    :class:`~docworkers.ingest.parsing.IsolatedParser` (which can kill its child process); the
    in-process parser checks the deadline between pages and blocks.

    The ``ocr_*`` fields bound OCR (:mod:`~docworkers.ingest.parsing.ocr`): each page's
    recognition runs as its own process with ``ocr_page_timeout_seconds`` and
    ``ocr_max_memory_bytes``, and a document that needs OCR gets ``ocr_timeout_seconds`` more
    on top of ``timeout_seconds`` for all of it. ``ocr_languages`` names the Tesseract language
    packs, joined by "+" (``"deu+eng"``); each must be installed (``tesseract-ocr-<code>``).
    """

    max_file_bytes: int = 100 * 1024 * 1024
    timeout_seconds: float = 120.0
    max_memory_bytes: int = 2 * 1024**3
    max_chars: int = 50_000_000
    ocr_languages: str = "eng"
    ocr_dpi: int = 300  # what Tesseract reads best; a huge page is rendered smaller
    ocr_page_timeout_seconds: float = 60.0
    ocr_timeout_seconds: float = 600.0
    ocr_max_memory_bytes: int = 1024**3

    def __post_init__(self) -> None:
        if not isinstance(self.ocr_languages, str) or not _LANGUAGES.fullmatch(
                self.ocr_languages):
            raise ConfigurationError("ocr_languages", "must be Tesseract language codes joined "
                                     f"by '+' (for example 'eng' or 'deu+eng'), got "
                                     f"{self.ocr_languages!r}")
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "ocr_languages":
                continue
            if spec.name.endswith("timeout_seconds"):
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                if not ok or not math.isfinite(value) or value <= 0:
                    raise ConfigurationError(
                        spec.name, f"must be a positive number of seconds, got {value!r}"
                    )
            elif not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigurationError(spec.name, f"must be a positive integer, got {value!r}")
        if not 50 <= self.ocr_dpi <= 1200:
            raise ConfigurationError("ocr_dpi", f"must be between 50 and 1200, got {self.ocr_dpi}")


DEFAULT_LIMITS = ParseLimits()


def check_mode(value: object) -> OcrMode:
    """``value`` as an OCR mode; ConfigurationError naming ``ocr`` otherwise. (Here, not in
    ``ocr.py``: the parent process checks modes without importing OCR's dependencies.)"""
    return one_of("ocr", value, OCR_MODES)
