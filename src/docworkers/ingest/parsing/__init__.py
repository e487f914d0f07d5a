"""Document parsers: PDF, DOCX, HTML, Markdown, plain text, legacy Word (.doc), sheets (.xlsx,
.xls, .csv), slides (.pptx) and email (.eml, .msg) into :class:`ParsedDocument`.

``parse_document`` runs in the calling process; ``IsolatedParser`` runs it in killable child
processes with hard time and memory limits, which is what workers should use on uploads.
"""

from typing import TYPE_CHECKING, Any

from docworkers.ingest.parsing.detect import detect_kind
from docworkers.ingest.parsing.isolated import IsolatedParser
from docworkers.ingest.parsing.limits import DEFAULT_LIMITS, ParseLimits

if TYPE_CHECKING:
    from docworkers.ingest.parsing.parse import parse_document

__all__ = ["DEFAULT_LIMITS", "IsolatedParser", "ParseLimits", "detect_kind", "parse_document"]


def __getattr__(name: str) -> Any:
    # The parsers (pdfium, lxml, python-docx, openpyxl ...) are imported on first use: a worker
    # parses in IsolatedParser's children, and importing them there only saves it ~35 MB and
    # half a second of start-up.
    if name == "parse_document":
        from docworkers.ingest.parsing.parse import parse_document

        return parse_document
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
