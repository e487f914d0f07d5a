"""Tables without ruling lines, found from aligned text: on digital PDF pages and in OCR.

A table drawn with no line at all is still visible as alignment: several consecutive text
lines whose words fall into the same column gaps. A block qualifies when each of its lines
has a wide gap (:data:`_GAP` line heights) between words, its lines are no further apart than
rows are, and the gaps that no word of its body crosses split it into :data:`_MIN_COLUMNS`
columns or more; its first line is the header. Inside a block, a short line in the first
column is a label over the rows below ("Current assets:") and a line within one other column
is a cell's wrapped text. The block is then read like a ruled table whose rules are missing
(``pdf_tables``: the same column gaps, cell assignment, wrapped rows and validation), so the
two detectors cannot drift apart.

Being wrong costs more than missing a table (a paragraph read as a grid is garbled), so it is
conservative: three columns at the least (two-column prose, a table of contents' title and
page number, and key-value lists have two), three quarters of the cells filled, at most one
column of long cells (side-by-side paragraphs), and no dot leaders, ascending page numbers,
bullet columns, code punctuation, equation numbers or sentences running down the cells. On
a digital page a table must also be a run of the page's text order, so the text around it
keeps its order.

The same functions serve OCR (:func:`ocr_tables`): Tesseract's word boxes become characters
in PDF points (y up), and the ruling lines Tesseract reports as empty boxes become
:class:`~docworkers.ingest.parsing.pdf_tables.Line` objects for the ruled-table reader.

Cost: reading every character's box costs six times the text of a page, so digital pages are
only examined when :func:`may_have_aligned_tables` (pdfium's text rectangles, 0.1 ms a page)
sees three consecutive lines with three pieces whose gaps line up; a rejected block is retried
from at most :data:`_ATTEMPTS` of its lines, so a long page stays linear.
"""

from __future__ import annotations

import bisect
import ctypes
import itertools
import re
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

import pypdfium2.raw as pdfium_c

import docworkers.ingest.parsing.pdf_tables as pdf_tables  # a cycle: names read at call time

__all__ = ["find_aligned_tables", "may_have_aligned_tables", "ocr_tables", "ocr_words"]

_GAP = 1.5  # a column gap is at least this many line heights wide (justified prose: < 1)
_MIN_COLUMNS = 3
_MIN_LINES = 3  # a header and two rows
_ROW_SPACING = 2.6  # line centres further apart (in line heights) end a table
_FILLED = 0.75  # of the cells hold text (a ruled table needs 0.6: its rules vouch for it)
_LONG_CELL = 3.5  # mean words per cell of a column of long cells
_ATTEMPTS = 6  # starts tried inside one rejected block
_LABEL_WORDS = 5  # a label over rows is short ("Current assets:"); a longer line is prose
_MAX_RECTS = 4000  # more text runs: a map or a drawing of text, not examined
_LEADERS = re.compile(r"(\.\s?){4,}|…{2,}|_{4,}|·{3,}")
_BULLET = re.compile(r"^(\W|\(?[0-9a-zA-Z]{1,2}[.)])$")
_CODE = re.compile(r"[{};]|\w\(|==|:=|->|^#")
_PAGE_NUMBER = re.compile(r"^\d{1,4}$")
_EQUATION = re.compile(r"^(\(\d{1,3}[a-z]?\)|[=<>≤≥≈])$")  # "(3)", "=": displayed formulas


# ---------------------------------------------------------------------------- the cheap signal


def may_have_aligned_tables(textpage: Any) -> bool:
    """Whether three consecutive lines of pdfium's text rectangles (runs of text, one or a
    few per line) have three pieces a line height apart, with two gaps that overlap down
    the three (the columns' gaps): the only pages whose characters are read for this."""
    raw = textpage.raw
    count = pdfium_c.FPDFText_CountRects(raw, 0, -1)
    if count < _MIN_LINES * _MIN_COLUMNS or count > _MAX_RECTS:
        return False
    # lines by the rounded centre of their rectangles (a line's runs share a font's box):
    # a dict, not a sort of every rectangle, since this runs on every page
    rows: dict[int, list[float]] = {}
    left, top, right, bottom = (ctypes.c_double() for _ in range(4))
    for index in range(count):
        pdfium_c.FPDFText_GetRect(raw, index, left, top, right, bottom)
        height = top.value - bottom.value
        if height > 1:
            row = rows.setdefault(round(top.value + bottom.value), [height])
            row[0] = max(row[0], height)
            row += (left.value, right.value)
    # lines in a row whose gaps overlap, and the gaps they share
    run, common = 0, list[tuple[float, float]]()
    line: list[float] = []
    anchor = 0
    for key in [*sorted(rows, reverse=True), None]:  # top line first; None closes the last
        if key is not None and line and anchor - key < min(line[0], rows[key][0]):
            line += rows[key][1:]  # centres within half a line height: one line (a
            line[0] = max(line[0], rows[key][0])  # formula's fonts, a superscript)
            continue
        if line:
            gaps = _gaps(line) if len(line) >= 1 + 2 * _MIN_COLUMNS else []
            shared = _overlaps(common, gaps)
            if len(gaps) < _MIN_COLUMNS - 1:
                run, common = 0, []
            elif run and len(shared) >= _MIN_COLUMNS - 1:
                run, common = run + 1, shared
            else:
                run, common = 1, gaps
            if run >= _MIN_LINES:
                return True
        if key is not None:
            line, anchor = list(rows[key]), key
    return False


def _gaps(line: Sequence[float]) -> list[tuple[float, float]]:
    """The wide gaps between the pieces of a line (its height, then left, right pairs)."""
    pieces = _pieces(zip(line[1::2], line[2::2], strict=True), line[0])
    return [(a[1], b[0]) for a, b in itertools.pairwise(pieces)]


def _overlaps(
    one: Sequence[tuple[float, float]], other: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Where the gaps of ``one`` (the columns' gaps so far) overlap those of ``other``: for
    each, its widest overlap with a gap not yet taken, so the count never grows down a run."""
    shared = []
    used: set[int] = set()  # a gap of ``other`` shared once (not by two columns' gaps)
    for a, b in one:
        parts = [(min(b, d) - max(a, c), k) for k, (c, d) in enumerate(other)
                 if min(b, d) > max(a, c) and k not in used]
        if parts:
            _width, k = max(parts)
            used.add(k)
            shared.append((max(a, other[k][0]), min(b, other[k][1])))
    return shared


def _pieces(spans: Iterable[tuple[float, float]], height: float) -> list[tuple[float, float]]:
    """Spans merged where less than :data:`_GAP` line heights apart, left to right."""
    out: list[list[float]] = []
    for left, right in sorted(spans):
        if out and left - out[-1][1] < _GAP * height:
            out[-1][1] = max(out[-1][1], right)
        else:
            out.append([left, right])
    return [(a, b) for a, b in out]


# ---------------------------------------------------------------------------- the detector


def find_aligned_tables(
    chars: Sequence[pdf_tables.TextChar], taken: Iterable[int] = (), *, in_order: bool = True
) -> list[pdf_tables.FoundTable]:
    """The tables that aligned text forms among ``chars`` (those not in ``taken``: already
    in a ruled table), top first. ``in_order``: a table whose characters, in text order
    (``index``), have text it does not take between them is not one, since that text
    would move below it (a page's text order follows what it means; OCR's does not)."""
    skip = set(taken)
    visible = [c for c in chars if not c.text.isspace() and c.index not in skip]
    if len(visible) < pdf_tables._MIN_LETTERS:
        return []
    lines = pdf_tables._lines(visible)
    indices = sorted(c.index for c in visible)
    shapes = [_shape(line) for line in lines]
    tables: list[pdf_tables.FoundTable] = []
    start = attempts = reach = 0
    while start < len(lines):
        end, labels = _grow(shapes, start)
        if end - start - len(labels) >= _MIN_LINES:
            table = _read_block(lines[start:end], [label - start for label in labels])
            if table is not None and (not in_order or _in_order(table, indices)):
                tables.append(table)
                start = end
                continue
        # A rejected block is tried again from its next lines (its first was a caption?),
        # but only so often: a page of a thousand aligned lines that are no table would
        # otherwise cost a million line comparisons.
        attempts = attempts + 1 if start < reach else 0
        reach = max(reach, end)
        start = start + 1 if attempts < _ATTEMPTS else reach
    return tables


def _in_order(table: pdf_tables.FoundTable, indices: Sequence[int]) -> bool:
    """Whether no other character of the page (``indices``, sorted) lies between the
    table's characters in text order: as many lie in their range as the table has."""
    low, high = min(table.chars), max(table.chars)
    between = bisect.bisect_right(indices, high) - bisect.bisect_left(indices, low)
    return between == len(table.chars)


_Shape = tuple[float, float, list[tuple[float, float]]]


def _shape(line: Sequence[pdf_tables.TextChar]) -> _Shape:
    """A line's centre, height and word spans."""
    height = statistics.median(c.top - c.bottom for c in line) or 8.0
    words = pdf_tables._words(line, height)
    spans = [(word[0].left, word[-1].right) for word in words]
    centre = statistics.median(c.y for c in line)
    return centre, height, spans


def _grow(shapes: Sequence[_Shape], start: int) -> tuple[int, list[int]]:
    """The end of the block that starts (header) at line ``start``, and its label lines:
    lines that each have a wide gap, close enough to be rows, whose body keeps
    :data:`_MIN_COLUMNS` columns; a line of one piece within the first column, followed by
    such a line, is a label over the rows below ("Current assets:")."""
    y, height, spans = shapes[start]
    pieces = _pieces(spans, height)
    if len(pieces) < 2:
        return start, []
    body: list[tuple[float, float]] = []
    labels: list[int] = []
    end = start + 1
    while end < len(shapes):
        below, line_height, line_spans = shapes[end]
        if y - below > _ROW_SPACING * max(height, line_height) or y < below:
            break
        line_pieces = _pieces(line_spans, line_height)
        if len(line_pieces) < 2:
            second = (body or pieces)[1][0]
            if (len(line_pieces) == 1 and len(line_spans) <= _LABEL_WORDS
                    and line_pieces[0][1] < second and end + 1 < len(shapes)
                    and len(_pieces(shapes[end + 1][2], shapes[end + 1][1])) >= 2
                    and (not labels or labels[-1] < end - 1)):
                labels.append(end)
                y, end = below, end + 1
                continue
            merged = _pieces(body + line_spans, height)
            if (line_pieces and body and _in_a_column(line_pieces[0], body)
                    and len(merged) >= _MIN_COLUMNS):
                body, y, end = merged, below, end + 1  # a cell's text wrapped
                continue
            break
        merged = _pieces(body + line_spans, height)  # the body's columns so far
        if len(merged) < _MIN_COLUMNS:
            break
        body, y, end = merged, below, end + 1
    while labels and labels[-1] >= end - 1:  # a label needs rows below it
        end = labels.pop()
    return end, labels


def _in_a_column(piece: tuple[float, float], columns: Sequence[tuple[float, float]]) -> bool:
    """Whether ``piece`` starts right of the first column and spans no gap between
    ``columns``: the wrapped rest of one cell ("O'Bannon Drive (related party)")."""
    left, right = piece
    gaps = [(a[1], b[0]) for a, b in itertools.pairwise(columns)]
    return bool(gaps) and left > gaps[0][0] and not any(
        left <= start and end <= right for start, end in gaps)


def _read_block(
    lines: Sequence[Sequence[pdf_tables.TextChar]], labels: Sequence[int]
) -> pdf_tables.FoundTable | None:
    """The table of ``lines`` (the first is the header; ``labels`` are the positions of
    label lines, rows of their own) or None."""
    header = list(lines[0])
    body = [char for number, line in enumerate(lines) if number and number not in labels
            for char in line]
    inside = [char for line in lines for char in line]
    height = statistics.median(c.top - c.bottom for c in inside) or 8.0
    bounds = pdf_tables._column_gaps(body, header, [], height)
    if len(bounds) + 1 < _MIN_COLUMNS:
        return None
    columns = pdf_tables._Columns(sorted(bounds), [None] * len(bounds), height)
    bands: list[list[pdf_tables.TextChar]] = [header, []]
    for number, line in enumerate(lines[1:], start=1):
        if number in labels:
            bands += [list(line), []]
        else:
            bands[-1].extend(line)
    bands = [band for band in bands if band]
    # with labels, each label and each run of rows a band: as in a table ruled by band
    rows = pdf_tables._rows(bands if labels else [header, body], columns)
    if len(rows) - len(labels) < _MIN_LINES or not _looks_tabular(rows):
        return None
    return pdf_tables._table(rows, inside)


def _looks_tabular(rows: Sequence[Sequence[Sequence[pdf_tables.TextChar]]]) -> bool:
    """The checks a ruled table does not need: three columns with text, three quarters of
    the cells and half of each row filled, at most one column of long cells, body cells
    mostly not starting in lower case, no dot leaders, bullet column, ascending page numbers
    or code."""
    width = len(rows[0])
    used = [c for c in range(width) if any(pdf_tables._wordy(row[c]) for row in rows)]
    if len(used) < _MIN_COLUMNS:
        return False
    text = [[pdf_tables._cell_text(row[c]) for c in used] for row in rows]
    text = [text[0]] + [row for row in text[1:] if any(row[1:])]  # label rows left out
    cells = [cell for row in text for cell in row if cell]
    if any(sum(1 for cell in row if cell) * 2 < len(used) for row in text):
        return False  # a row with most of its cells empty: fragments of a layout
    if len(cells) < _FILLED * len(used) * len(rows):
        return False
    if any(_LEADERS.search(cell) for cell in cells):
        return False
    body = [cell for row in text[1:] for cell in row if cell]
    if sum(1 for cell in body if cell[:1].islower()) * 2 > len(body):
        return False  # sentences running down side-by-side blocks (an infographic)
    if sum(1 for cell in cells if _CODE.search(cell)) * 4 > len(cells):
        return False
    columns = [[row[c] for row in text] for c in range(len(used))]
    long = 0
    for column in columns:
        filled = [cell for cell in column if cell]
        if filled and sum(len(cell.split()) for cell in filled) > _LONG_CELL * len(filled):
            long += 1
    if long > 1:
        return False
    if all(_BULLET.match(cell) for cell in columns[0][1:] if cell):
        return False  # a list: bullets or "1." "a)" beside its items
    every = [[pdf_tables._cell_text(row[c]) for row in rows[1:]] for c in range(width)]
    if any(column and all(_EQUATION.match(cell) for cell in column if cell)
           and any(column) for column in every):
        return False  # equation numbers or a column of "=": formulas beside text
    numbers = [int(cell) for cell in columns[-1][1:] if _PAGE_NUMBER.match(cell)]
    return not (len(numbers) == len(rows) - 1 and numbers == sorted(numbers)
                and any(c.isalpha() for cell in columns[0] for c in cell))


# ---------------------------------------------------------------------------- OCR word boxes


def ocr_words(
    words: Sequence[tuple[str, float, float, float, float]], dpi: int
) -> tuple[list[pdf_tables.TextChar], list[pdf_tables.Line]]:
    """Tesseract's words (text, left, top, width, height in pixels, y down) as characters in
    points with y up (each word's box shared evenly by its letters; a word's characters have
    consecutive indices, a skipped index between words marks the space), and its empty boxes
    drawn long and thin as ruling lines. A '|' is a ruling line read as a letter: dropped,
    and the word split there. Character ``index`` // 1000 is the word's position."""
    scale = 72.0 / dpi
    chars: list[pdf_tables.TextChar] = []
    lines: list[pdf_tables.Line] = []
    for number, (text, left, top, width, height) in enumerate(words):
        x0, x1 = left * scale, (left + width) * scale
        y1, y0 = -top * scale, -(top + height) * scale
        if not text.strip():
            if width >= 20 * height:
                lines.append(pdf_tables.Line(True, (y0 + y1) / 2, x0, x1))
            elif height >= 20 * width:
                lines.append(pdf_tables.Line(False, (x0 + x1) / 2, y0, y1))
            continue
        step = (x1 - x0) / max(len(text), 1)
        for position, letter in enumerate(text[:999]):
            if letter == "|" or letter.isspace():
                continue
            index = number * 1000 + position
            left_x = x0 + position * step
            chars.append(pdf_tables.TextChar(index, letter, left_x, y0, left_x + step, y1))
    return chars, lines


def ocr_tables(
    words: Sequence[tuple[str, float, float, float, float]], dpi: int
) -> list[tuple[frozenset[int], str]]:
    """The tables among an OCR'd page's ``words`` (see :func:`ocr_words`): those its ruling
    lines bound, then those its aligned text forms; each as the positions of the words it
    took and its Markdown."""
    chars, lines = ocr_words(words, dpi)
    tables = pdf_tables.find_tables(lines, chars) if len(lines) >= 2 else []
    taken = [index for table in tables for index in table.chars]
    tables += find_aligned_tables(chars, taken, in_order=False)
    return [(frozenset(index // 1000 for index in table.chars), table.markdown)
            for table in tables]
