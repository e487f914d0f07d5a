"""Document parsers: PDF, DOCX, HTML, Markdown, plain text, legacy Word (.doc), sheets (.xlsx,
.xls, .csv), slides (.pptx) and email (.eml, .msg) into :class:`ParsedDocument`.

``parse_document`` runs in the calling process; ``IsolatedParser`` runs it in killable child
processes with hard time and memory limits, which is what workers should use on uploads.
"""

from docworkers.ingest.parsing.detect import detect_kind
from docworkers.ingest.parsing.isolated import IsolatedParser
from docworkers.ingest.parsing.limits import DEFAULT_LIMITS, ParseLimits
from docworkers.ingest.parsing.parse import parse_document

__all__ = ["DEFAULT_LIMITS", "IsolatedParser", "ParseLimits", "detect_kind", "parse_document"]
