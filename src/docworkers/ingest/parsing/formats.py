"""The formats beyond PDF, DOCX, HTML and text: sheets, slides, legacy Office and email.

One entry point for :mod:`~docworkers.ingest.parsing.parse`. For OLE2 files the kind that
detection guessed from the first 64 KiB is checked against the file's streams, which decide.

The sheet and slide readers are imported on a first sheet or deck, not with this module: every
parser child imports the parsers as it starts, and openpyxl, xlrd and python-pptx were 40 % of
that (a child ready in 0.24 s instead of 0.40, 56 MB instead of 72, on an AMD EPYC VM), for
formats most workers never see.
"""

from __future__ import annotations

from pathlib import Path

from docworkers.ingest.document import ParsedDocument
from docworkers.ingest.parsing._common import Deadline
from docworkers.ingest.parsing.eml import parse_eml
from docworkers.ingest.parsing.legacy_doc import parse_doc
from docworkers.ingest.parsing.limits import ParseLimits
from docworkers.ingest.parsing.ole import OLE_KINDS, ole_kind, open_ole
from docworkers.ingest.parsing.outlook import parse_msg

OTHER_KINDS = frozenset({"csv", "doc", "xls", "xlsx", "pptx", "eml", "msg"})


def parse_other(
    path: Path, filename: str, kind: str, limits: ParseLimits, deadline: Deadline,
    attachments_dir: Path | None = None,
) -> ParsedDocument:  # fmt: skip
    """Parse ``path`` of one of :data:`OTHER_KINDS` (its size is checked already).

    ``attachments_dir`` is where an email's attachments are saved for fan-out (None: only
    listed); see :mod:`~docworkers.ingest.parsing.mail`.
    """
    if kind == "xlsx":
        from docworkers.ingest.parsing.sheets import parse_xlsx

        return parse_xlsx(path, filename, limits, deadline)
    if kind == "pptx":
        from docworkers.ingest.parsing.slides import parse_pptx

        return parse_pptx(path, filename, limits, deadline)
    if kind in ("csv", "eml"):
        data = path.read_bytes()
        if kind == "csv":
            from docworkers.ingest.parsing.sheets import parse_csv

            return parse_csv(data, filename, limits, deadline)
        return parse_eml(data, filename, limits, deadline, attachments_dir)
    if kind not in OLE_KINDS:
        raise ValueError(f"not a kind parse_other reads: {kind!r}")
    ole = open_ole(path, filename)
    try:
        kind = ole_kind(ole, filename)
        if kind == "doc":
            return parse_doc(path, filename, ole, limits, deadline)
        if kind == "msg":
            return parse_msg(ole, filename, limits, deadline, attachments_dir)
    finally:
        ole.close()
    from docworkers.ingest.parsing.sheets import parse_xls

    return parse_xls(path, filename, limits, deadline)
