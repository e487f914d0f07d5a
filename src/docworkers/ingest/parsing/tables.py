"""Tables as Markdown: the one text form every parser gives a table in.

A table keeps its rows and columns as a Markdown table (a header row, a ``---`` rule, one line
per row), so a chunk about one row still says what its columns are; the chunker recognises
these blocks and repeats the header when a table is split across chunks.
"""

from __future__ import annotations

from collections.abc import Sequence


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # a cell is one line; "|" would open a new column
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(rows: Sequence[Sequence[object]]) -> str:
    """The rows as a Markdown table, the first row as header; '' when there is no cell text.

    Short rows are padded to the widest row; empty trailing columns are dropped.
    """
    cells = [[_cell(value) for value in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return ""
    width = max(len(row) for row in cells)
    while width > 1 and not any(len(row) >= width and row[width - 1] for row in cells):
        width -= 1
    cells = [(row + [""] * width)[:width] for row in cells]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "---|" * width)
    return "\n".join(lines)
