"""PowerPoint (.pptx): one page per slide, its title as a heading, text, tables and notes.

Shapes are read in the slide's order, group shapes included (with an explicit stack: no
recursion on hostile nesting); tables become Markdown tables; the speaker notes follow the
slide's text under "Notes:", because presenters often put the real content there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pptx
from pptx.enum.shapes import MSO_SHAPE_TYPE

from docworkers.errors import DocumentError, NoExtractableTextError
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.parsing._common import Deadline, clean_text, damaged, iso
from docworkers.ingest.parsing.limits import ParseLimits
from docworkers.ingest.parsing.packages import check_package
from docworkers.ingest.parsing.tables import markdown_table

_REPAIR = "Open it in PowerPoint or LibreOffice, save it again as .pptx and upload that."


def parse_pptx(
    path: Path, filename: str, limits: ParseLimits, deadline: Deadline
) -> ParsedDocument:
    """Parse a PowerPoint 2007+ presentation after the package checks."""
    archive, _names = check_package(
        path, filename, limits, label="PPTX", required="ppt/presentation.xml", repair=_REPAIR
    )
    archive.close()
    try:
        presentation = pptx.Presentation(str(path))
        pages: list[Page] = []
        size = 0
        truncated = False
        slides = list(presentation.slides)
        for number, slide in enumerate(slides, 1):
            deadline.check()
            text = _slide_text(slide, number)
            if not text:
                continue
            size += len(text) + 2
            if size > limits.max_chars:
                truncated = True
                break
            pages.append(Page(text, number))
        metadata = _metadata(presentation.core_properties, len(slides))
    except DocumentError:
        raise
    except Exception as exc:  # python-pptx/lxml raise many types for damaged packages
        raise damaged(filename, "PPTX file", exc, _REPAIR) from None
    if not pages:
        raise NoExtractableTextError(
            filename, "the presentation contains no text (its slides may hold only pictures)."
        )
    return ParsedDocument(filename, "pptx", pages, metadata, truncated)


def _slide_text(slide: Any, number: int) -> str:
    title_shape = slide.shapes.title
    title = clean_text(title_shape.text_frame.text) if title_shape is not None else ""
    blocks = [f"## Slide {number}: {' '.join(title.split())}" if title else f"## Slide {number}"]
    body: list[str] = []
    stack = [iter(slide.shapes)]
    while stack:
        shape = next(stack[-1], None)
        if shape is None:
            stack.pop()
            continue
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            stack.append(iter(shape.shapes))
        elif title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        elif getattr(shape, "has_table", False) and shape.has_table:
            body.append(markdown_table(
                [[cell.text for cell in row.cells] for row in shape.table.rows]))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            body.append(clean_text(shape.text_frame.text))
    blocks.extend(block for block in body if block)
    if slide.has_notes_slide:
        notes_frame = slide.notes_slide.notes_text_frame
        notes = clean_text(notes_frame.text) if notes_frame is not None else ""
        if notes:
            blocks.append(f"Notes: {notes}")
    return "\n\n".join(blocks) if title or len(blocks) > 1 else ""


def _metadata(props: Any, slide_count: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {"page_count": slide_count}
    for name, attribute in (("title", "title"), ("author", "author"), ("subject", "subject")):
        value = clean_text(str(getattr(props, attribute, "") or ""))
        if value:
            metadata[name] = value
    for name in ("created", "modified"):
        try:
            date = iso(getattr(props, name))
        except (ValueError, TypeError):
            date = None
        if date:
            metadata[name] = date
    return metadata
