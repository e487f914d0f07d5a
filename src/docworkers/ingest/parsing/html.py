"""HTML text extraction with selectolax (lexbor): visible text, block structure, "#" headings.

Nothing is ever fetched: lexbor only builds a tree, and we read text nodes, never ``src`` or
``href``. The tree is walked with an explicit loop, never recursion, and nesting deeper than
:data:`MAX_DEPTH` is flattened first because lexbor's tree builder is quadratic in depth
(100,000 nested ``<div>`` take ~30 s to parse).
"""

from __future__ import annotations

import re
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from docworkers.errors import CorruptDocumentError, NoExtractableTextError
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.parsing._common import Deadline, clean_text
from docworkers.ingest.parsing.encoding import decode_html
from docworkers.ingest.parsing.limits import ParseLimits
from docworkers.ingest.parsing.tables import drop_empty_columns, markdown_table, repeatable

MAX_DEPTH = 512  # what Chromium's HTML parser allows, too
_SKIP = frozenset(
    {"script", "style", "noscript", "template", "svg", "head", "iframe", "object", "-comment"}
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_PARAGRAPH_BREAK = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "center", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header",
        "hgroup", "hr", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "ul",
        "caption", "menu",
    }
)  # fmt: skip
_LINE_BREAK = frozenset({"br", "li", "option", "legend"})
_CELLS = frozenset({"td", "th"})
# Elements whose end tag is optional or that never have one; they do not deepen nesting.
_NO_DEPTH = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr", "p", "li", "td", "th", "tr", "option", "dt", "dd", "thead", "tbody",
        "tfoot", "colgroup", "optgroup", "rb", "rp", "rt", "rtc", "caption", "html", "head",
        "body",
    }
)  # fmt: skip
_MAX_COLSPAN = 64  # wider spans only pad a row with empty cells (browsers clamp at 1000)
_MAX_ROWSPAN = 100  # repeating a merged cell's text costs a copy per row: keep it small
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>")
_SPACES = re.compile(r"\s+")


def parse_html(
    data: bytes, filename: str, limits: ParseLimits, deadline: Deadline
) -> ParsedDocument:
    """Decode (BOM, meta charset, detection), parse and extract the visible text."""
    html, encoding = decode_html(data, filename)
    deadline.check()
    try:
        tree = LexborHTMLParser(_limit_nesting(html))
    except Exception as exc:  # lexbor rejects very little, but never crash a worker on it
        raise CorruptDocumentError(
            filename, f"the HTML could not be parsed ({type(exc).__name__}); save the page again."
        ) from None
    deadline.check()
    root = tree.body if tree.body is not None else tree.root
    text = clean_text(_visible_text(root)) if root is not None else ""
    if not text:
        raise NoExtractableTextError(
            filename, "the page has no visible text (only markup, scripts or images)."
        )
    truncated = len(text) > limits.max_chars
    metadata: dict[str, Any] = {"encoding": encoding}
    metadata.update(_metadata(tree))
    return ParsedDocument(filename, "html", [Page(text[: limits.max_chars])], metadata, truncated)


def _visible_text(root: Any) -> str:
    """Walk the tree without recursion, calling enter/leave like a SAX reader would."""
    text = _TextBuilder()
    node = root.child
    depth = 1
    while node is not None:
        tag = node.tag
        descend = False
        if tag == "-text":
            text.add(node.text_content or "")
        elif tag not in _SKIP:
            text.enter(tag, node.attributes if tag in _CELLS else None)
            descend = node.child is not None
            if not descend:
                text.leave(tag)
        if descend:
            node = node.child
            depth += 1
            continue
        while node.next is None:  # climb, leaving every finished element
            node = node.parent
            depth -= 1
            if depth == 0 or node is None:
                return text.result()
            text.leave(node.tag)
        node = node.next
    return text.result()


class _Table:
    """The rows of one open ``<table>`` on its column grid, with the rowspans still open."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.cells: list[tuple[str, int, int]] = []  # (text, colspan, rowspan) of the open row
        self.spans: dict[int, tuple[int, str]] = {}  # column -> (rows still covered, text)

    def end_row(self) -> None:
        """Place the open row's cells on the grid, around cells that rowspans carry down."""
        row: list[str] = []
        pending = iter(self.cells)
        cell = next(pending, None)
        column = 0
        while cell is not None or any(c >= column for c in self.spans):
            carried = self.spans.get(column)
            if carried is not None:
                left, text = carried
                row.append(text)  # a cell merged down repeats its text in every row
                self.spans[column] = (left - 1, text)
                if left <= 1:
                    del self.spans[column]
                column += 1
                continue
            if cell is None:
                row.append("")
                column += 1
                continue
            text, colspan, rowspan = cell
            if rowspan > 1:
                self.spans[column] = (rowspan - 1, repeatable(text))
            row.extend([text] + [""] * (colspan - 1))
            for extra in range(1, colspan):
                if rowspan > 1:
                    self.spans[column + extra] = (rowspan - 1, "")
            column += colspan
            cell = next(pending, None)
        self.rows.append(row)
        self.cells = []


class _TextBuilder:
    """Turns enter/text/leave events into Markdown-ish text.

    A table whose cells hold plain text becomes a Markdown table (parsing/tables.py), with
    ``colspan`` and ``rowspan`` kept on the column grid; a row whose cells hold paragraphs or
    headings means a layout table, whose cells are emitted as ordinary blocks instead, and a
    table of one column is plain lines.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.cell_starts: list[tuple[int, int, int]] = []  # (index in parts, colspan, rowspan)
        self.tables: list[_Table] = []
        self.pre = 0

    def add(self, text: str) -> None:
        if not self.pre:
            text = _SPACES.sub(" ", text)
            if not self.parts or self.parts[-1][-1:] in (" ", "\n"):
                text = text.lstrip(" ")  # no indentation from source formatting
        if text:
            self.parts.append(text)

    def enter(self, tag: str, attributes: dict[str, str | None] | None = None) -> None:
        level = _HEADINGS.get(tag)
        if level:
            self.parts.append("\n\n" + "#" * level + " ")
        elif tag in _PARAGRAPH_BREAK:
            self.parts.append("\n\n")
            self.pre += tag == "pre"
            if tag == "table":
                self.tables.append(_Table())
        elif tag in _LINE_BREAK:
            self.parts.append("\n")
        elif tag in _CELLS:
            attributes = attributes or {}
            self.cell_starts.append(
                (
                    len(self.parts),
                    _span(attributes.get("colspan"), _MAX_COLSPAN),
                    _span(attributes.get("rowspan"), _MAX_ROWSPAN),
                )
            )

    def leave(self, tag: str) -> None:
        if tag == "table" and self.tables:
            self._flush(self.tables.pop())
        if tag in _HEADINGS or tag in _PARAGRAPH_BREAK:
            self.parts.append("\n\n")
            self.pre -= tag == "pre"
        elif tag in _CELLS and self.cell_starts:
            start, colspan, rowspan = self.cell_starts.pop()
            cell = "".join(self.parts[start:]).strip()
            del self.parts[start:]
            if self.tables:
                self.tables[-1].cells.append((cell, colspan, rowspan))
            elif cell:
                self.parts.append(f"\n\n{cell}\n\n")
        elif tag == "tr" and self.tables:
            table = self.tables[-1]
            if any("\n\n" in cell or cell.startswith("#") for cell, _c, _r in table.cells):
                self._flush(table)  # a layout row: what came before stays in order
                blocks = [cell for cell, _c, _r in table.cells if cell]
                self.parts.append("\n\n" + "\n\n".join(blocks) + "\n\n")
                table.cells = []
            elif table.cells:
                table.cells = [(" ".join(c.split()), cs, rs) for c, cs, rs in table.cells]
                table.end_row()

    def _flush(self, table: _Table) -> None:
        """Write the rows collected so far: a Markdown table, or lines for one column."""
        if table.cells:  # cells outside any <tr> (lexbor adds one, but be safe)
            table.end_row()
        rows, table.rows = table.rows, []
        columns = {i for row in rows for i, cell in enumerate(row) if cell}
        if len(columns) > 1:
            self.parts.append("\n\n" + markdown_table(drop_empty_columns(rows)) + "\n\n")
        elif columns:
            lines = [cell for row in rows for cell in row if cell]
            self.parts.append("\n\n" + "\n".join(lines) + "\n\n")

    def result(self) -> str:
        return "".join(self.parts)


def _span(value: str | None, limit: int) -> int:
    """A colspan/rowspan attribute as a count in [1, limit] (browsers clamp them too)."""
    try:
        return min(max(int(str(value).strip()), 1), limit)
    except ValueError:
        return 1


def _metadata(tree: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    title_node = tree.css_first("title") or tree.css_first("h1")
    title = " ".join((title_node.text(deep=True) or "").split()) if title_node else ""
    if title:
        metadata["title"] = title
    html_node = tree.css_first("html")
    language = html_node.attributes.get("lang") if html_node is not None else None
    if language:
        metadata["language"] = str(language).strip()
    author = tree.css_first('meta[name="author"]')
    if author is not None and author.attributes.get("content"):
        metadata["author"] = str(author.attributes["content"]).strip()
    return metadata


def _limit_nesting(html: str) -> str:
    """Drop start/end tags nested deeper than MAX_DEPTH, keeping all text (one linear pass).

    Counting is approximate (it does not know every implied end tag), which is fine for a
    guard: real pages stay far below the limit, and hostile ones only lose markup.
    """
    depth = 0
    deepest = 0
    for match in _TAG.finditer(html):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in _NO_DEPTH:
            continue
        depth = max(depth - 1, 0) if closing else depth + 1
        deepest = max(deepest, depth)
    if deepest <= MAX_DEPTH:
        return html
    pieces: list[str] = []
    position = 0
    depth = 0
    for match in _TAG.finditer(html):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in _NO_DEPTH:
            continue
        too_deep = (depth if closing else depth + 1) > MAX_DEPTH
        depth = max(depth - 1, 0) if closing else depth + 1
        if too_deep:
            pieces.append(html[position : match.start()])
            pieces.append(" ")
            position = match.end()
    pieces.append(html[position:])
    return "".join(pieces)
