"""Tables as Markdown: the one text form every parser gives a table in.

A table keeps its rows and columns as a Markdown table (a header row, a ``---`` rule, one line
per row), so a chunk about one row still says what its columns are; the chunker recognises
these blocks and repeats the header when a table is split across chunks.
"""

from __future__ import annotations

from collections.abc import Sequence

#: A merged cell's text is repeated in each row it covers only up to this length, so that a
#: hostile file cannot multiply a huge cell by its row count.
MAX_REPEATED_CELL = 200


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


def repeatable(text: str) -> str:
    """``text`` if it is short enough to repeat in every row of a merged cell, else ''."""
    return text if len(text) <= MAX_REPEATED_CELL else ""


def drop_empty_columns(rows: Sequence[Sequence[str]]) -> list[list[str]]:
    """``rows`` without the columns that are empty in every row (spacer columns of HTML
    layout, the padding of a span); short rows count as empty where they end."""
    width = max((len(row) for row in rows), default=0)
    kept = [c for c in range(width) if any(c < len(row) and row[c] for row in rows)]
    return [[row[c] if c < len(row) else "" for c in kept] for row in rows]
