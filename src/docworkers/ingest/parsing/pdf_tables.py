"""Tables on PDF pages, found from their ruling lines, read as Markdown tables.

A PDF has no tables, only characters and drawn lines. A table is a region bounded by ruling
lines: a grid (every row and column ruled), or a "booktabs" table (a few horizontal rules and
perhaps some vertical ones) whose missing rows and columns come from the text's alignment:
rows are text lines (a wrapped line continues the row above, see :func:`_rows`), columns are
the vertical gaps that no word of the body crosses. The band above the first inner rule is the
header. A word stays whole in the column of its middle; where a column line is missing in a
grid, the text belongs to the merged cell that starts left of it. Regions whose "cells" are
paragraphs, dot leaders or a formula are not tables (:func:`_table`).

Cost matters (ingestion throughput): :func:`may_have_tables` is the cheap signal, a look at
the page's top-level path objects (no text, no path segments); only pages that pass it are
examined, and their characters are read only when a region bounds two lines of text.
Characters outside tables keep pdfium's reading order and text; the table's characters are
replaced by its Markdown table, where its first character was.

Tables without any ruling line are found from aligned text by
:mod:`~docworkers.ingest.parsing.aligned_tables`, which reads them with the functions here.
Not handled: lines inside Form XObjects, rotated tables, curved (rounded) borders.
"""

from __future__ import annotations

import bisect
import ctypes
import itertools
import logging
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pypdfium2.raw as pdfium_c

from docworkers.ingest.parsing import aligned_tables
from docworkers.ingest.parsing.tables import markdown_table

__all__ = ["Line", "TextChar", "find_tables", "may_have_tables", "page_text_with_tables"]

_LOG = logging.getLogger(__name__)
_PATH = 2  # FPDF_PAGEOBJ_PATH
_MOVETO, _LINETO = 2, 0  # FPDF_SEGMENT_*
_THIN = 2.5  # a filled shape at most this thick (pt) is a ruling line
_MIN_RULE = 8.0  # shorter strokes are ticks, arrows, glyph parts
_TOUCH = 3.0  # lines this close (pt) meet
_MAX_PATHS = 3000  # a page drawing more paths is a chart or a map, not a table
_MAX_SEGMENTS = 20_000
_MAX_LINES = 1500  # more is a drawing (a map, a chart), not a page of tables
_MAX_REGIONS = 40  # examined per page (a hostile page could draw hundreds)
_MIN_LETTERS = 12  # letters and digits a table holds at the least
_MAX_MEAN_CELL = 150  # characters: longer "cells" are paragraphs in boxes
_MIN_RULES = 2  # horizontal rules a page needs before it is examined


@dataclass(frozen=True, slots=True)
class Line:
    """An axis-aligned ruling line in page space (points, y upwards)."""

    horizontal: bool
    at: float  # y of a horizontal line, x of a vertical one
    start: float  # x0 (horizontal) or y0 (vertical)
    end: float


@dataclass(frozen=True, slots=True)
class TextChar:
    """One character of the page's text with its box; ``index`` is pdfium's char index."""

    index: int
    text: str
    left: float
    bottom: float
    right: float
    top: float
    x: float = field(init=False)  # the centre, computed once: read for every comparison
    y: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", (self.left + self.right) / 2)
        object.__setattr__(self, "y", (self.bottom + self.top) / 2)


@dataclass(frozen=True, slots=True)
class FoundTable:
    """A table: the char indices it took from the page text and its Markdown."""

    chars: frozenset[int]
    markdown: str


# ---------------------------------------------------------------------------- pdfium access


def may_have_tables(page: Any) -> bool:
    """The cheap signal: at least two horizontal rules, or a path of many segments (a grid
    drawn as one path), among the page's top-level objects."""
    raw = page.raw
    count = pdfium_c.FPDFPage_CountObjects(raw)
    if count > _MAX_PATHS * 4:
        return False
    rules = 0
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    for k in range(count):
        obj = pdfium_c.FPDFPage_GetObject(raw, k)
        if pdfium_c.FPDFPageObj_GetType(obj) != _PATH:
            continue
        if not pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
            continue
        width, height = right.value - left.value, top.value - bottom.value
        if height <= _THIN and width >= _MIN_RULE * 2:
            rules += 1
        elif pdfium_c.FPDFPath_CountSegments(obj) >= 12:
            rules += _MIN_RULES
        if rules >= _MIN_RULES:
            return True
    return False


def page_text_with_tables(page: Any, textpage: Any) -> str | None:
    """The page's text with each table replaced by its Markdown table; None when the page
    has no table (the caller keeps its plain text). Tables without ruling lines come from
    aligned text (:mod:`~docworkers.ingest.parsing.aligned_tables`)."""
    try:
        return _with_tables(page, textpage)
    except Exception:  # an odd page must never cost the document its text: read it plainly
        _LOG.warning("table detection failed on a page; its text is kept as is", exc_info=True)
        return None


def _with_tables(page: Any, textpage: Any) -> str | None:
    chars: list[TextChar] | None = None
    tables: list[FoundTable] = []
    groups = _ruled_groups(page, textpage) if may_have_tables(page) else []
    if groups:  # rules that bound no text: the characters are not read for them
        chars = _chars(textpage)
        tables = _read_regions(groups, chars)
    if aligned_tables.may_have_aligned_tables(textpage):
        chars = chars if chars is not None else _chars(textpage)
        taken = [index for table in tables for index in table.chars]
        tables += aligned_tables.find_aligned_tables(chars, taken)
    if not tables or chars is None:
        return None
    return _replace(textpage, len(chars), tables, chars)


def _ruled_groups(page: Any, textpage: Any) -> list[list[Line]]:
    lines = _ruling_lines(page)
    if len(lines) < _MIN_RULES:
        return []
    # the biggest regions first, and only so many: each reads every character of the page
    regions = sorted(_regions(lines), key=len, reverse=True)[:_MAX_REGIONS]
    return [group for group in regions if _worth_reading(textpage, group)]


def _ruling_lines(page: Any) -> list[Line]:
    """Axis-aligned strokes and thin filled shapes of the page's top-level paths.

    A path whose box is thin is one line, read from its box alone; only other paths are
    walked segment by segment (a grid drawn as one path, stroked cell outlines), and a path
    with a curve is dropped whole (figures are where the segments are).
    """
    raw = page.raw
    lines: list[Line] = []
    segments = 0
    x, y = ctypes.c_float(), ctypes.c_float()
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    matrix = pdfium_c.FS_MATRIX()
    paths = 0
    for k in range(pdfium_c.FPDFPage_CountObjects(raw)):
        obj = pdfium_c.FPDFPage_GetObject(raw, k)
        if pdfium_c.FPDFPageObj_GetType(obj) != _PATH:
            continue
        paths += 1
        if paths > _MAX_PATHS:
            return []
        if not pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
            continue
        x0, y0, x1, y1 = left.value, bottom.value, right.value, top.value
        if y1 - y0 <= _THIN and x1 - x0 >= _MIN_RULE:
            lines.append(Line(True, (y0 + y1) / 2, x0, x1))
            continue
        if x1 - x0 <= _THIN and y1 - y0 >= _MIN_RULE / 2:
            lines.append(Line(False, (x0 + x1) / 2, y0, y1))
            continue
        if x1 - x0 < _MIN_RULE and y1 - y0 < _MIN_RULE:
            continue  # a dot, a tick, part of a glyph
        n = pdfium_c.FPDFPath_CountSegments(obj)
        pdfium_c.FPDFPath_GetDrawMode(obj, fill, stroke)
        outlines = bool(stroke.value)  # a filled box is a background, not cell borders
        if not outlines and n <= 5:
            continue  # one filled box
        segments += max(n, 0)
        if segments > _MAX_SEGMENTS:
            return []
        if not pdfium_c.FPDFPageObj_GetMatrix(obj, matrix):
            continue
        a, b, c, d, e, f = matrix.a, matrix.b, matrix.c, matrix.d, matrix.e, matrix.f
        if abs(b) > 1e-6 or abs(c) > 1e-6:
            continue  # rotated or skewed: not a table we read
        found: list[Line] = []
        subpath: list[tuple[float, float]] = []
        for index in range(n):
            segment = pdfium_c.FPDFPath_GetPathSegment(obj, index)
            kind = pdfium_c.FPDFPathSegment_GetType(segment)
            if kind not in (_MOVETO, _LINETO):
                break  # a curve: a figure, not a table
            pdfium_c.FPDFPathSegment_GetPoint(segment, x, y)
            point = (a * x.value + e, d * y.value + f)
            if kind == _MOVETO:
                _add_subpath(found, subpath, outlines)
                subpath = [point]
                continue
            subpath.append(point)
            if pdfium_c.FPDFPathSegment_GetClose(segment):
                subpath.append(subpath[0])
        else:
            _add_subpath(found, subpath, outlines)
            lines.extend(found)
    return lines


def _add_subpath(lines: list[Line], points: list[tuple[float, float]], outlines: bool) -> None:
    if len(points) < 2:
        return
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if y1 - y0 <= _THIN and x1 - x0 >= _MIN_RULE:  # a stroke or a thin filled bar
        lines.append(Line(True, (y0 + y1) / 2, x0, x1))
        return
    if x1 - x0 <= _THIN and y1 - y0 >= _MIN_RULE / 2:
        lines.append(Line(False, (x0 + x1) / 2, y0, y1))
        return
    if not outlines:
        return
    for (xa, ya), (xb, yb) in itertools.pairwise(points):  # a cell outline
        if abs(ya - yb) < 0.5 and abs(xa - xb) >= _MIN_RULE:
            lines.append(Line(True, ya, min(xa, xb), max(xa, xb)))
        elif abs(xa - xb) < 0.5 and abs(ya - yb) >= _MIN_RULE / 2:
            lines.append(Line(False, xa, min(ya, yb), max(ya, yb)))


def _worth_reading(textpage: Any, group: Sequence[Line]) -> bool:
    """Whether the region of ``group`` is big enough for a table, holds two lines of text
    (a header and a row; a page header between two rules is one line) and is not underlined
    text: a few pdfium calls, instead of reading every character's box."""
    rules = [line for line in group if line.horizontal]
    left, right = min(line.start for line in rules), max(line.end for line in rules)
    bottom, top = min(line.at for line in rules), max(line.at for line in rules)
    if top - bottom < 6 or right - left < 20 or _frame(group, left, right, bottom, top):
        return False
    text = textpage.get_text_bounded(left, bottom, right, top, errors="replace").strip()
    if "\n" not in text or sum(1 for char in text if not char.isspace()) < 4:
        return False
    return not _underlines(textpage, rules)


def _frame(group: Sequence[Line], left: float, right: float, bottom: float, top: float) -> bool:
    """Whether the lines only draw a box around text (a framed theorem, a note): two
    horizontal rules, every vertical line on the box's left or right edge."""
    walls = [line.at for line in group if not line.horizontal]
    inner = [x for x in walls if left + _TOUCH < x < right - _TOUCH]
    rules = _cluster(line.at for line in group if line.horizontal)
    return bool(walls) and not inner and len(rules) == 2 and bottom < top


def _underlines(textpage: Any, rules: Sequence[Line]) -> bool:
    """Whether most rules have text sitting right on them: underlined links (a table of
    contents), not a table, whose rows keep some space from its rules. Looks at a dozen."""
    step = max(len(rules) // 12, 1)
    sample = sorted(rules, key=lambda line: line.at)[::step]
    sitting = sum(
        1
        for rule in sample
        if textpage.get_text_bounded(rule.start, rule.at + 0.5, rule.end, rule.at + 2.0).strip()
    )
    return sitting * 3 >= len(sample) * 2


def _chars(textpage: Any) -> list[TextChar]:
    raw = textpage.raw
    count = pdfium_c.FPDFText_CountChars(raw)
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    chars: list[TextChar] = []
    for index in range(max(count, 0)):
        code = pdfium_c.FPDFText_GetUnicode(raw, index)
        text = chr(code) if 0 < code < 0x110000 else ""
        if text and not text.isspace():
            pdfium_c.FPDFText_GetCharBox(raw, index, left, right, bottom, top)
            chars.append(TextChar(index, text, left.value, bottom.value, right.value, top.value))
        else:
            chars.append(TextChar(index, text or " ", 0.0, 0.0, 0.0, 0.0))
    return chars


def _replace(textpage: Any, count: int, tables: list[FoundTable], chars: Sequence[TextChar]) -> str:
    """The page text with each table's characters replaced by its Markdown, in place of its
    first character; whitespace between two characters of one table goes with it."""
    owner: dict[int, int] = {}
    for position, table in enumerate(tables):
        for index in table.chars:
            owner[index] = position
    _absorb_whitespace(owner, chars)
    parts: list[str] = []
    placed: set[int] = set()
    run_start = 0
    for index in range(count):
        found = owner.get(index)
        if found is None:
            continue
        number = found
        if index > run_start:
            parts.append(textpage.get_text_range(run_start, index - run_start, errors="replace"))
        run_start = index + 1
        if number not in placed:
            placed.add(number)
            parts.append("\n\n" + tables[number].markdown + "\n\n")
    if count > run_start:
        parts.append(textpage.get_text_range(run_start, count - run_start, errors="replace"))
    return "".join(parts)


def _absorb_whitespace(owner: dict[int, int], chars: Sequence[TextChar]) -> None:
    previous: int | None = None
    pending: list[int] = []
    for char in chars:
        if char.text.isspace():
            pending.append(char.index)
            continue
        number = owner.get(char.index)
        if number is not None and number == previous:
            for index in pending:
                owner[index] = number
        pending = []
        previous = number


# ---------------------------------------------------------------------------- geometry


def find_tables(lines: Sequence[Line], chars: Sequence[TextChar]) -> list[FoundTable]:
    """The tables that the ruling ``lines`` bound, read from ``chars`` (see module doc)."""
    return _read_regions(_regions(lines), chars)


def _read_regions(groups: Sequence[Sequence[Line]], chars: Sequence[TextChar]) -> list[FoundTable]:
    tables: list[FoundTable] = []
    visible = [char for char in chars if not char.text.isspace()]
    for group in groups:
        table = _read_region(group, visible)
        if table is not None:
            tables.append(table)
    return tables


def _regions(lines: Sequence[Line]) -> list[list[Line]]:
    """Groups of lines that form one table: lines that meet, and horizontal rules of the same
    width stacked close above each other (booktabs tables have no vertical lines). A page of
    more than :data:`_MAX_LINES` lines is a drawing: none.

    Only nearby pairs are compared (sorted sweeps, not every pair: a page of 400 dotted
    leaders would cost 80,000 comparisons)."""
    if len(lines) > _MAX_LINES:
        return []
    parent = list(range(len(lines)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    flat = sorted((i for i, line in enumerate(lines) if line.horizontal), key=lambda i: lines[i].at)
    heights = [lines[i].at for i in flat]
    for j, v in enumerate(lines):  # a vertical line meets the horizontal ones it crosses
        if v.horizontal:
            continue
        low = bisect.bisect_left(heights, v.start - _TOUCH)
        for i in flat[low : bisect.bisect_right(heights, v.end + _TOUCH)]:
            if lines[i].start - _TOUCH <= v.at <= lines[i].end + _TOUCH:
                join(i, j)
    for horizontal in (True, False):  # one rule drawn in pieces: a sweep along each line
        same = sorted(
            (i for i, line in enumerate(lines) if line.horizontal == horizontal),
            key=lambda i: (round(lines[i].at), lines[i].start),
        )
        run, reach = -1, 0.0
        for i in same:
            line = lines[i]
            if run >= 0 and abs(line.at - lines[run].at) <= 1 and line.start <= reach + _TOUCH:
                join(run, i)
                reach = max(reach, line.end)
            else:
                run, reach = i, line.end
    by_start = sorted(flat, key=lambda i: lines[i].start)
    for k, i in enumerate(by_start):  # rules of one width stacked above each other
        for j in by_start[k + 1 :]:
            if lines[j].start - lines[i].start > 5:
                break
            if _stacked(lines[i], lines[j]):
                join(i, j)
    groups: dict[int, list[Line]] = {}
    for i, line in enumerate(lines):
        groups.setdefault(find(i), []).append(line)
    return [group for group in groups.values() if sum(line.horizontal for line in group) >= 2]


def _stacked(one: Line, other: Line) -> bool:
    """Two horizontal rules with the same ends, close enough to bound one table."""
    width = max(one.end - one.start, other.end - other.start)
    return abs(one.end - other.end) <= 5 and abs(one.at - other.at) <= max(width * 0.6, 120.0)


def _cluster(values: Iterable[float], tolerance: float = _TOUCH) -> list[float]:
    ordered = sorted(values)
    out: list[list[float]] = []
    for value in ordered:
        if out and value - out[-1][-1] <= tolerance:
            out[-1].append(value)
        else:
            out.append([value])
    return [sum(group) / len(group) for group in out]


def _read_region(group: Sequence[Line], chars: Sequence[TextChar]) -> FoundTable | None:
    rules = [line for line in group if line.horizontal]
    left = min(line.start for line in rules)
    right = max(line.end for line in rules)
    ys = _cluster(line.at for line in rules)  # ascending
    bottom, top = ys[0], ys[-1]
    if top - bottom < 6 or right - left < 20:
        return None
    inside = [
        char
        for char in chars
        if left - 1 <= char.x <= right + 1 and bottom - 1 <= char.y <= top + 1
    ]
    if not inside:
        return None
    height = statistics.median(char.top - char.bottom for char in inside) or 8.0
    if _cuts_through_text(chars, left, right, bottom, top, height):
        return None
    xs = [
        x
        for x in _cluster(line.at for line in group if not line.horizontal)
        if left + _TOUCH < x < right - _TOUCH
    ]
    bands = _bands(ys, inside)
    # Column lines, and the text's own gaps (columns inside a ruled group, unruled tables),
    # found below the header, whose group labels ("Top-20" over five columns) span columns.
    header = bands[0] if len(bands) > 1 else []
    body = [char for band in bands[1:] for char in band] or inside
    walls = {x: _wall(group, x, top - bottom) for x in xs}
    walls.update((x, None) for x in _column_gaps(body, header, xs, height))
    bounds = sorted(walls)
    grid = _Columns(bounds, [walls[x] for x in bounds], height)
    return _table(_rows(bands, grid), inside)


@dataclass(frozen=True, slots=True)
class _Columns:
    """Column boundaries (x, ascending) and, for those ruled down most of the table, the
    y-ranges their lines cover: text where such a line is missing is one merged cell."""

    bounds: Sequence[float]
    walls: Sequence[Sequence[tuple[float, float]] | None]
    height: float  # of a line of text: what tells words apart


def _wall(group: Sequence[Line], x: float, height: float) -> list[tuple[float, float]] | None:
    """The y-ranges of the vertical lines at ``x``, if they cover half the table's height
    (a real column line); None for a line drawn only in part (a header's)."""
    spans = sorted(
        (line.start, line.end)
        for line in group
        if not line.horizontal and abs(line.at - x) <= _TOUCH
    )
    covered, reach = 0.0, float("-inf")
    for start, end in spans:
        covered += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return spans if covered >= height / 2 else None


def _cuts_through_text(
    chars: Sequence[TextChar], left: float, right: float, bottom: float, top: float, height: float
) -> bool:
    """Whether text runs across the region's left or right edge: lines underlining text or
    boxing part of a paragraph, not a table (whose text keeps clear of its edges)."""
    for char in chars:
        if bottom + 1 < char.y < top - 1 and (
            left - height < char.x < left - 1 or right + 1 < char.x < right + height
        ):
            return True
    return False


def _bands(ys: Sequence[float], chars: Sequence[TextChar]) -> list[list[TextChar]]:
    """The characters between each pair of neighbouring rules, top band first."""
    bands: list[list[TextChar]] = [[] for _ in range(len(ys) - 1)]
    for char in chars:
        slot = bisect.bisect_left(ys, char.y) - 1
        bands[min(max(slot, 0), len(bands) - 1)].append(char)
    return [band for band in reversed(bands) if band]


def _column_gaps(
    body: Sequence[TextChar], header: Sequence[TextChar], lines: Sequence[float], height: float
) -> list[float]:
    """Column boundaries from the text: gaps wider than a line height that no word of the
    body crosses, with words on both sides between the same column ``lines`` (centred text
    in a ruled column leaves a gap by the line, not a column). Each cut goes where no header
    word crosses it, if the gap has such a place (a header wider than its column)."""
    words = [(word[0].left, word[-1].right) for word in _words(body, height)]
    if not words:
        return []
    spans = sorted(words)
    heads = [(word[0].left, word[-1].right) for word in _words(header, height)]
    cuts: list[float] = []
    reach = spans[0][1]
    for start, end in spans[1:]:
        ruled = any(reach < x < start for x in lines)  # the column line is the boundary
        if start - reach >= height and not ruled and _sides_hold_words(reach, start, words, lines):
            cuts.append(_free_cut(reach, start, heads))
        reach = max(reach, end)
    return [cut for cut in cuts if all(abs(cut - line) > height for line in lines)]


def _sides_hold_words(
    left: float, right: float, words: Sequence[tuple[float, float]], lines: Sequence[float]
) -> bool:
    low = max((x for x in lines if x <= left), default=float("-inf"))
    high = min((x for x in lines if x >= right), default=float("inf"))
    centres = [(a + b) / 2 for a, b in words]
    return any(low < c < left for c in centres) and any(right < c < high for c in centres)


def _free_cut(left: float, right: float, heads: Sequence[tuple[float, float]]) -> float:
    """The middle of the widest part of [left, right] that no header word covers, else the
    middle of the gap (a group label over several columns)."""
    pieces = [(left, right)]
    for a, b in heads:
        pieces = [
            part
            for x, y in pieces
            for part in ((x, min(y, a)), (max(x, b), y))
            if part[1] - part[0] > 0
        ]
    if not pieces:
        return (left + right) / 2
    x, y = max(pieces, key=lambda part: part[1] - part[0])
    return (x + y) / 2


def _words(chars: Sequence[TextChar], height: float) -> list[list[TextChar]]:
    """Runs of characters in text order, cut where pdfium put a space (dropped here as
    whitespace, so found as an index gap) or where a wide gap or a new line starts."""
    words: list[list[TextChar]] = []
    for char in sorted(chars, key=lambda c: c.index):
        if words:
            last = words[-1][-1]
            same_line = abs(char.y - last.y) < height / 2
            if (
                char.index == last.index + 1
                and same_line
                and -height / 2 <= char.left - last.right <= height / 3
            ):
                words[-1].append(char)
                continue
        words.append([char])
    return words


def _lines(chars: Sequence[TextChar]) -> list[list[TextChar]]:
    """Characters grouped into text lines (vertical overlap with one of the last few lines,
    so that a low, tiny "." still joins its digits), top line first."""
    out: list[list[TextChar]] = []
    bounds: list[tuple[float, float]] = []
    for char in sorted(chars, key=lambda c: -c.top):
        best, best_overlap = -1, 0.0
        for k in range(max(len(out) - 3, 0), len(out)):
            low, high = bounds[k]
            overlap = min(high, char.top) - max(low, char.bottom)
            if overlap > 0.4 * min(high - low, char.top - char.bottom) and overlap > best_overlap:
                best, best_overlap = k, overlap
        if best >= 0:
            out[best].append(char)
            low, high = bounds[best]
            bounds[best] = (min(low, char.bottom), max(high, char.top))
        else:
            out.append([char])
            bounds.append((char.bottom, char.top))
    return out


def _rows(bands: Sequence[Sequence[TextChar]], columns: _Columns) -> list[list[list[TextChar]]]:
    """Cells (lists of characters) of each row. The first of several bands is the header
    row. In a table ruled row by row (three bands or more) a band is one row, unless two of
    its lines each fill two cells right of the first column (rows grouped under a label:
    "Single | DPR", then "| BM25+DPR"). Other bands are cut into text lines, and a line with
    one cell, or with its first cell empty and at most half the others filled or a cell going
    on in lower case, continues the row above in its band (a cell's text wrapped)."""
    rows: list[list[list[TextChar]]] = []
    ruled = len(bands) >= 3
    for number, band in enumerate(bands):
        if number == 0 and len(bands) > 1:
            rows.append(_cells(band, columns))
            continue
        lines = [_cells(line, columns) for line in _lines(band)]
        if ruled and sum(1 for cells in lines if _filled(cells[1:]) >= 2) < 2:
            rows.append(_cells(band, columns))
            continue
        for position, cells in enumerate(lines):
            filled = _filled(cells)
            wrapped = filled < 2 or (
                not cells[0] and (filled * 2 <= len(cells) or any(map(_goes_on, cells)))
            )
            if position > 0 and wrapped:
                for column, part in enumerate(cells):
                    rows[-1][column].extend(part)
            else:
                rows.append(cells)
    return rows


def _filled(cells: Sequence[Sequence[TextChar]]) -> int:
    return sum(1 for cell in cells if cell)


def _goes_on(cell: Sequence[TextChar]) -> bool:
    """Whether a cell's text starts in lower case (the rest of a sentence above)."""
    return bool(cell) and min(cell, key=lambda char: char.index).text[:1].islower()


def _cells(chars: Sequence[TextChar], columns: _Columns) -> list[list[TextChar]]:
    """The characters of one row by column; one that lies where a column line is missing
    belongs to the merged cell that starts left of it."""
    cells: list[list[TextChar]] = [[] for _ in range(len(columns.bounds) + 1)]
    for word in _words(chars, columns.height):  # a word stays whole, in the column of its middle
        x = (word[0].left + word[-1].right) / 2
        y = (min(char.bottom for char in word) + max(char.top for char in word)) / 2
        column = bisect.bisect_left(columns.bounds, x)
        while column > 0 and not _walled(columns.walls[column - 1], y):
            column -= 1
        cells[column].extend(word)
    return cells


def _walled(wall: Sequence[tuple[float, float]] | None, y: float) -> bool:
    return wall is None or any(start - _TOUCH <= y <= end + _TOUCH for start, end in wall)


def _table(rows: list[list[list[TextChar]]], inside: Sequence[TextChar]) -> FoundTable | None:
    """Validate the grid (two rows and two columns with text; 60 % of the cells, a third of
    each column's and half the header filled; a dozen letters; not prose) and write it out,
    or None."""
    # a column without a letter or digit is dot leaders or rules drawn in text
    width = len(rows[0]) if rows else 0
    used = [c for c in range(width) if any(_wordy(row[c]) for row in rows)]
    if len(rows) < 2 or len(used) < 2:
        return None
    filled = [sum(1 for row in rows if row[c]) for c in used]
    header = sum(1 for c in used if rows[0][c])
    if (
        sum(filled) < 0.6 * len(rows) * len(used)
        or min(filled) * 3 < len(rows)
        or header < max(2, len(used) / 2)
    ):
        return None
    text = [[_cell_text(row[c]) for c in used] for row in rows]
    letters = sum(1 for row in text for cell in row for char in cell if char.isalnum())
    if letters < _MIN_LETTERS or _prose(text):
        return None  # a formula between rules ("B(r) = | r") is no table
    markdown = markdown_table(text)
    if not markdown:
        return None
    return FoundTable(frozenset(char.index for char in inside), markdown)


def _wordy(chars: Sequence[TextChar]) -> bool:
    return any(char.text.isalnum() for char in chars)


def _prose(rows: Sequence[Sequence[str]]) -> bool:
    """Whether the "cells" are really side-by-side paragraphs: long on average, or a column
    whose rows mostly run on mid-sentence (a cell of three words or more without a closing
    stop, then a cell starting in lower case: "This woman has had breast", "conserving")."""
    cells = [cell for row in rows for cell in row if cell]
    if sum(len(cell) for cell in cells) > _MAX_MEAN_CELL * len(cells):
        return True
    for column in range(len(rows[0]) if rows else 0):
        texts = [row[column] for row in rows]
        pairs = list(itertools.pairwise(texts))
        running = sum(
            1
            for above, below in pairs
            if len(above.split()) >= 3 and above[-1:] not in ".!?:;" and below[:1].islower()
        )
        if running >= 2 and running * 2 > len(pairs):
            return True
    return False


def _cell_text(chars: Sequence[TextChar]) -> str:
    """A cell's characters in text order; a space where pdfium had one (whitespace is not in
    ``chars``, so it shows as a gap in the indices) or the text went elsewhere."""
    out: list[str] = []
    last: TextChar | None = None
    for char in sorted(chars, key=lambda c: c.index):
        if last is not None and char.index != last.index + 1:
            out.append(" ")
        out.append(char.text)
        last = char
    return "".join(out)
