"""Spreadsheets (.xlsx, .xls) and CSV: every sheet a Markdown table, so cells keep their place.

A sheet becomes one :class:`Page` numbered by its position in the workbook, headed by the
sheet's name; the table's first row is its header (the chunker repeats it when a sheet is split
across chunks). Formulas give their last computed value, as Excel shows them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import xlrd

from docworkers.errors import (
    CorruptDocumentError,
    DocumentError,
    EncryptedDocumentError,
    NoExtractableTextError,
)
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.parsing._common import Deadline, clean_text, damaged, iso
from docworkers.ingest.parsing.encoding import decode_text
from docworkers.ingest.parsing.limits import ParseLimits
from docworkers.ingest.parsing.ole import encrypted_reason
from docworkers.ingest.parsing.packages import check_package
from docworkers.ingest.parsing.tables import markdown_table

_CHECK_EVERY = 1000  # rows between deadline checks
_REPAIR = "Open it in Excel or LibreOffice, save it again as .xlsx and upload that."
_DELIMITERS = ",;\t|"


def parse_xlsx(
    path: Path, filename: str, limits: ParseLimits, deadline: Deadline
) -> ParsedDocument:
    """Read an Excel 2007+ workbook in openpyxl's read-only (streaming) mode."""
    archive, _names = check_package(
        path, filename, limits, label="XLSX", required="xl/workbook.xml", repair=_REPAIR
    )
    archive.close()
    handle = path.open("rb")  # a file, not the path: openpyxl refuses names not ending .xlsx
    try:
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:
        handle.close()  # openpyxl/zipfile/lxml raise many types for damaged packages
        raise damaged(filename, "XLSX file", exc, _REPAIR) from None
    try:
        sheets = [(str(sheet.title), _xlsx_rows(sheet)) for sheet in book.worksheets]
        pages, truncated = _pages(sheets, filename, limits, deadline)
        # openpyxl fills in "openpyxl" and now() for a workbook that states neither: only
        # the title is the file's own for sure
        metadata = _metadata(book.properties.title, None, None, None)
        metadata["sheet_count"] = len(sheets)
    except DocumentError:
        raise
    except Exception as exc:
        raise damaged(filename, "XLSX file", exc, _REPAIR) from None
    finally:
        book.close()
        handle.close()
    return _document(filename, "xlsx", pages, metadata, truncated)


def parse_xls(
    path: Path, filename: str, limits: ParseLimits, deadline: Deadline
) -> ParsedDocument:
    """Read an Excel 97-2003 workbook with xlrd, one sheet at a time."""
    try:
        # ragged rows: each row as long as its own last cell, not padded to the widest
        book = xlrd.open_workbook(str(path), on_demand=True, ragged_rows=True,
                                  logfile=io.StringIO())
    except Exception as exc:
        if isinstance(exc, xlrd.XLRDError) and "encrypted" in str(exc).lower():
            raise EncryptedDocumentError(filename, encrypted_reason()) from None
        raise damaged(filename, "XLS file", exc, _REPAIR) from None
    try:
        sheets = [
            (str(name), _xls_rows(book, index)) for index, name in enumerate(book.sheet_names())
        ]
        pages, truncated = _pages(sheets, filename, limits, deadline)
        metadata = _metadata(None, book.user_name, None, None)
        metadata["sheet_count"] = len(sheets)
    except DocumentError:
        raise
    except Exception as exc:
        raise damaged(filename, "XLS file", exc, _REPAIR) from None
    finally:
        book.release_resources()
    return _document(filename, "xls", pages, metadata, truncated)


def parse_csv(
    data: bytes, filename: str, limits: ParseLimits, deadline: Deadline
) -> ParsedDocument:
    """A CSV (comma, semicolon, tab or bar separated, as sniffed) as one table."""
    text, encoding = decode_text(data, filename)
    sample = text[:64 * 1024]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        dialect = csv.excel
    # A cell may be long prose; the csv module's default cap (128 KiB) would call it damage.
    csv.field_size_limit(max(csv.field_size_limit(), min(limits.max_chars, 2**31 - 1)))
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        pages, truncated = _pages([(None, reader)], filename, limits, deadline)
    except csv.Error as exc:
        raise CorruptDocumentError(
            filename, f"the file is not valid CSV ({exc}); if it is prose, rename it to .txt "
            "and upload it again.",
        ) from None
    return _document(filename, "csv", pages, {"encoding": encoding}, truncated)


def _xlsx_rows(sheet: Any) -> Iterable[Sequence[object]]:
    """The rows as stored, each as long as its last cell. The size a sheet states
    (``<dimension ref="A1:XFD1048576">``) is not trusted: openpyxl would pad every row to it,
    so one far cell in a 5 KB file meant a billion empty cells."""
    if hasattr(sheet, "reset_dimensions"):  # a read-only worksheet (not a chartsheet)
        sheet.reset_dimensions()
    return sheet.iter_rows(values_only=True)  # type: ignore[no-any-return]


def _xls_rows(book: Any, index: int) -> Iterable[list[object]]:
    sheet = book.sheet_by_index(index)
    try:
        for row in range(sheet.nrows):
            yield [_xls_value(cell, book.datemode) for cell in sheet.row_slice(row)]
    finally:
        book.unload_sheet(index)


def _xls_value(cell: Any, datemode: int) -> object:
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate.xldate_as_datetime(cell.value, datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell.value
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return bool(cell.value)
    if cell.ctype == xlrd.XL_CELL_ERROR:
        return xlrd.error_text_from_code.get(cell.value, "#ERROR")
    return cell.value


def _pages(
    sheets: Iterable[tuple[str | None, Iterable[Sequence[object]]]],
    filename: str, limits: ParseLimits, deadline: Deadline,
) -> tuple[list[Page], bool]:  # fmt: skip
    pages: list[Page] = []
    size = 0
    for number, (name, rows) in enumerate(sheets, 1):
        kept: list[list[str]] = []
        for count, row in enumerate(rows, 1):
            if count % _CHECK_EVERY == 0:
                deadline.check()
            cells = [_text(value) for value in row]
            while cells and not cells[-1]:  # a sheet's stated size is often far too large
                cells.pop()
            if not cells:
                continue
            kept.append(cells)
            size += sum(len(cell) + 3 for cell in cells)
            if size > limits.max_chars:
                pages.append(Page(_sheet_text(name, kept), number if name else None))
                return pages, True
        text = _sheet_text(name, kept)
        if text:
            pages.append(Page(text, number if name else None))  # a CSV has no pages
    return pages, False


def _sheet_text(name: str | None, rows: list[list[str]]) -> str:
    used = sorted({n for row in rows for n, cell in enumerate(row) if cell})
    if used and len(used) < max(len(row) for row in rows):  # spacer columns say nothing
        rows = [[row[n] if n < len(row) else "" for n in used] for row in rows]
    table = markdown_table(rows)
    if not table:
        return ""
    return f"## {' '.join(name.split())}\n\n{table}" if name else table


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and value.isprintable():  # the common case, checked in C
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ").removesuffix(" 00:00:00")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return clean_text(str(value))


def _metadata(title: Any, author: Any, created: Any, modified: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for name, value in (("title", title), ("author", author)):
        text = clean_text(str(value or ""))
        if text:
            metadata[name] = text
    for name, value in (("created", created), ("modified", modified)):
        if isinstance(value, dt.datetime):
            metadata[name] = iso(value)
    return metadata


def _document(
    filename: str, kind: str, pages: list[Page], metadata: dict[str, Any], truncated: bool
) -> ParsedDocument:
    if not pages:
        raise NoExtractableTextError(filename, "the spreadsheet has no cell with text in it.")
    return ParsedDocument(filename, kind, pages, metadata, truncated)
