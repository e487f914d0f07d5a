"""Tables become Markdown tables (PDF, DOCX, HTML), and split tables repeat their header."""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from docworkers.ingest.chunking import chunk_document
from docworkers.ingest.chunking.tables import table_blocks
from docworkers.ingest.defaults import MAX_CHARS_PER_TOKEN
from docworkers.ingest.document import Page, ParsedDocument
from docworkers.ingest.parsing import parse_document, pdf_tables
from docworkers.ingest.parsing import pdf as pdf_parser
from docworkers.ingest.parsing.aligned_tables import find_aligned_tables
from docworkers.ingest.parsing.pdf_tables import Line, TextChar, find_tables
from docworkers.ingest.parsing.tables import markdown_table
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.search import SearchService
from docworkers.ingest.tokenizer import load_tokenizer
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.queue import JobStatus, RedisJobRepository
from docworkers.workers import WorkerConfig

COUNTING = load_tokenizer(for_counting=True)


def tokens(text: str) -> int:
    """Reference count: the tokenizer itself, not the chunker's cached counter."""
    return len(COUNTING.encode(text, add_special_tokens=False).ids)


def grids(text: str) -> list[list[list[str]]]:
    """The Markdown tables of ``text`` as grids of cell texts (the rule row left out)."""
    out = []
    for block in table_blocks(text):
        lines = text[block.start : block.end].split("\n")
        out.append([[" ".join(c.split()) for c in line[1:-1].split("|")]
                    for number, line in enumerate(lines) if number != 1])
    return out


# ------------------------------------------------------------------------------------ PDF


def test_ruled_pdf_table_keeps_rows_and_columns(corpus: Path) -> None:
    [grid] = grids(parse_document(corpus / "pdf/layout-parser-paper-with-table.pdf").text)
    assert grid[0] == ["Dataset", "Base Model1", "Large Model", "Notes"]
    assert grid[2] == ["PRImA [3]", "M", "-",
                       "Layouts of scanned modern magazines and scientific reports"]
    assert grid[5][0] == "HJDataset [31]" and len(grid) == 6


def test_grid_drawn_as_one_path_is_a_table(corpus: Path) -> None:
    [grid] = grids(parse_document(corpus / "pdf/all-number-table.pdf").text)
    assert grid[5] == ["1200.01", "11"] and len(grid) == 8


def test_ruled_korean_tables_join_wrapped_cells(corpus: Path) -> None:
    first, second = grids(parse_document(corpus / "pdf/korean-text-with-tables.pdf").text)
    assert first[0] == second[0] == ["업종", "적립 대상"]
    assert first[3] == ["온라인쇼핑몰",
                        "삼성카드 쇼핑, G마켓, 옥션, 11번가, 인터파크, 쿠팡, 티몬, 위메프"]
    assert second[3] == ["편의점", "CU, GS25, 세븐일레븐, 미니스톱"]


def test_a_merged_pdf_cell_lies_in_its_first_column(corpus: Path) -> None:
    # "Europe" spans the Germany, Austria and France columns: no column line crosses it
    pdf = corpus / "pdf/pypdf_011-google-doc-document_google-doc-document.pdf"
    [grid] = grids(parse_document(pdf).text)
    assert grid[0] == ["", "Indonesia", "Germany", "Austria", "France", "Vatican"]
    assert grid[1] == ["Continent", "Asia", "Europe", "", "", ""]
    assert grid[2] == ["Capital", "Jakarta", "Berlin", "Vienna", "Paris", "Vatican City"]


def synthetic_page(rows: list[list[str]], xs: list[float]) -> list[TextChar]:
    """Characters of ``rows`` (a text line each, cells starting at ``xs``), 5 pt wide and
    8 pt high, lines 12 pt apart from y=200 down; a space between words is an index gap."""
    chars: list[TextChar] = []
    index = 0
    for number, row in enumerate(rows):
        bottom = 200.0 - 12 * number
        for x, cell in zip(xs, row, strict=True):
            for word_start, word in _words_at(cell, x):
                for k, letter in enumerate(word):
                    left = word_start + 5 * k
                    chars.append(TextChar(index, letter, left, bottom, left + 4.5, bottom + 8))
                    index += 1
                index += 1  # the space pdfium would put here
    return chars


def _words_at(cell: str, x: float) -> list[tuple[float, str]]:
    out, position = [], x
    for word in cell.split():
        out.append((position, word))
        position += 5 * (len(word) + 1)
    return out


def test_booktabs_rows_come_from_lines_and_wrapped_cells_join() -> None:
    rows = [["Facility", "Limit", "Note"],
            ["Acme Bank", "120", "secured by"],
            ["", "", "collateral"],  # wraps: joins the row above
            ["Beta Corp", "80", "unsecured"],
            ["", "95", "Second line"]]  # a row of its own under the label above
    chars = synthetic_page(rows, [100.0, 200.0, 260.0])
    rules = [Line(True, 211.0, 95.0, 360.0), Line(True, 198.0, 95.0, 360.0),
             Line(True, 150.0, 95.0, 360.0)]
    [table] = find_tables(rules, chars)
    assert table.markdown.split("\n") == [
        "| Facility | Limit | Note |", "|---|---|---|",
        "| Acme Bank | 120 | secured by collateral |",
        "| Beta Corp | 80 | unsecured |",
        "|  | 95 | Second line |",
    ]
    assert table.chars == {char.index for char in chars}


def test_rules_around_prose_are_not_a_table() -> None:
    lines = [["the quick brown fox jumps over", "the lazy dog and runs away"],
             ["into the forest where it", "hides from the hunters who"],
             ["search for it all day", "and all night long until"]]
    chars = synthetic_page(lines, [100.0, 260.0])
    rules = [Line(True, 211.0, 95.0, 420.0), Line(True, 170.0, 95.0, 420.0)]
    assert find_tables(rules, chars) == []


def plain_text(path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as patched:
        patched.setattr(pdf_parser, "page_text_with_tables", lambda page, textpage: None)
        return parse_document(path).text


def test_text_around_a_pdf_table_keeps_its_order(corpus: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = corpus / "pdf/layout-parser-paper-with-table.pdf"
    text = parse_document(path).text
    [block] = table_blocks(text)
    before = plain_text(path, monkeypatch).split("\n")
    table_lines = range(before.index("Dataset Base Model1 Large Model Notes"),
                        before.index("1 For each dataset, we train several models of different "
                                     "sizes for different needs (the trade-off between accuracy"))
    outside = [line for number, line in enumerate(before) if number not in table_lines]
    found = [line for line in (text[: block.start] + text[block.end :]).split("\n") if line]
    assert found == outside


@pytest.mark.parametrize("relative", ["pdf/DA-1p.pdf", "pdf/fake-memo.pdf",
                                      "pdf/layout-parser-paper-fast.pdf"])
def test_pdf_without_tables_reads_as_before(corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                            relative: str) -> None:
    assert parse_document(corpus / relative).text == plain_text(corpus / relative, monkeypatch)


# ------------------------------------------------------------------------------------ DOCX


def test_docx_merged_cells_stay_in_their_grid_columns(corpus: Path) -> None:
    simple, nested, merged = grids(parse_document(corpus / "docx/docx-tables.docx").text)
    assert simple == [["Header Col 1", "Header Col 2"], ["Lorem ipsum", "A link example"]]
    assert nested[1] == ["d", "e f g&t h", "i"]
    # vMerge repeats "a" and "d" down their rows; gridSpan leaves the spanned column empty
    assert merged == [["a", "b", ""], ["a", "c", "d"], ["e", "", "d"]]


def test_docx_rows_with_missing_or_skipped_cells(corpus: Path) -> None:
    tables = grids(parse_document(corpus / "docx/tables-with-incomplete-rows.docx").text)
    assert tables[1] == [["a", ""], ["b", "c"]]  # gridAfter: a short row
    assert tables[4][1] == ["", "d", "", ""]  # gridBefore shifts the row right
    assert tables[5][3] == ["", "More"]


# ------------------------------------------------------------------------------------ HTML


def test_html_spans_and_header_row(tmp_path: Path) -> None:
    page = tmp_path / "limits.html"
    page.write_text(
        "<html><body><p>Counterparty limits.</p><table>"
        "<tr><th>Counterparty</th><th></th><th>Rating</th><th>Limit</th></tr>"
        "<tr><td rowspan='2'>Acme Bank</td><td></td><td>AA</td><td>120</td></tr>"
        "<tr><td></td><td>A+</td><td>80</td></tr>"
        "<tr><td colspan='3'>Total</td><td>200</td></tr></table></body></html>"
    )
    [grid] = grids(parse_document(page).text)
    assert grid == [["Counterparty", "Rating", "Limit"],  # the spacer column is dropped
                    ["Acme Bank", "AA", "120"], ["Acme Bank", "A+", "80"], ["Total", "", "200"]]


def test_html_corpus_table(corpus: Path) -> None:
    text = parse_document(corpus / "html/example-steelJIS-datasheet-utf-16.html").text
    chemistry = next(grid for grid in grids(text) if grid[0][0] == "C")
    assert chemistry[0][5] == "Cr" and chemistry[1][5] == "0.75 - 1.2"


# ------------------------------------------------------------------------------------ chunks


def table_document(rows: int, *, cell: str = "AA", pages: int = 1) -> ParsedDocument:
    grid = [["Counterparty", "Rating", "Limit (EUR m)"]]
    grid += [[f"Bank number {n}", cell, str(100 + n)] for n in range(rows)]
    table = markdown_table(grid)
    texts = ["Exposure schedule of the risk committee.\n\n" + table + "\n\nEnd of schedule."]
    texts += [f"Page {n} prose." for n in range(2, pages + 1)]
    return ParsedDocument("limits.md", "markdown", [Page(t, n + 1) for n, t in enumerate(texts)])


HEADER = "| Counterparty | Rating | Limit (EUR m) |\n|---|---|---|\n"


def assert_table_chunks(doc: ParsedDocument, chunk_size: int) -> list[str]:
    """Every chunk keeps the chunking promises, a continued table chunk after its header;
    returns the chunk texts."""
    text = doc.text
    previous = None
    for chunk in chunk_document(doc, chunk_size=chunk_size):
        own = text[chunk.start_char : chunk.end_char]
        assert chunk.text in (own, HEADER + own) and own == own.strip()
        assert chunk.token_count == tokens(chunk.text) <= chunk_size
        assert len(chunk.text) <= chunk_size * MAX_CHARS_PER_TOKEN
        if previous is not None:
            assert chunk.start_char >= previous.end_char  # in order, no overlap
        previous = chunk
    return [chunk.text for chunk in chunk_document(doc, chunk_size=chunk_size)]


def test_a_table_that_fits_is_one_chunk() -> None:
    texts = assert_table_chunks(table_document(5), 254)
    assert any(t.startswith(HEADER) and t.endswith("| Bank number 4 | AA | 104 |") for t in texts)


@pytest.mark.parametrize("strategy", ["recursive", "markdown", "sentence"])
def test_a_split_table_repeats_its_header(strategy: str) -> None:
    doc = table_document(80)
    chunks = chunk_document(doc, chunk_size=64, strategy=strategy)
    rows = [c for c in chunks if "| Bank number" in c.text]
    assert len(rows) > 3
    assert all(chunk.text.startswith(HEADER) for chunk in rows)
    seen = [line for c in rows for line in c.text.split("\n")[2:]]
    assert seen == [f"| Bank number {n} | AA | {100 + n} |" for n in range(80)]  # all, once
    assert_table_chunks(doc, 64)


def test_a_row_bigger_than_a_chunk_is_cut_with_the_header() -> None:
    doc = table_document(3, cell="word " * 400)
    texts = assert_table_chunks(doc, 64)
    assert sum("word word" in t for t in texts) > 5
    assert all(t.startswith(HEADER) for t in texts if t.startswith("word"))


@pytest.mark.parametrize("seed", range(6))
def test_random_tables_keep_every_chunk_promise(seed: int) -> None:
    """Tables of random shape (huge cells and headers too) between paragraphs: every chunk
    is its rows, or the header and its rows; in order, within the limits, nothing lost."""
    rng = random.Random(seed)
    words = ["limit", "exposure", "AA+", "120.5", "counterparty", "x" * 300, "섹터", "|"]

    def cell() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.choice([1, 2, 5, 60])))

    parts = []
    for _ in range(rng.randint(1, 4)):
        width = rng.randint(1, 5)
        grid = [[cell() for _ in range(width)] for _ in range(rng.randint(2, 40))]
        parts += ["Some prose before the table. " * rng.randint(0, 30), markdown_table(grid)]
    doc = ParsedDocument("t.md", "markdown", [Page("\n\n".join(p for p in parts if p))])
    size = rng.choice([16, 64, 254])
    text = doc.text
    headers = {b.start: text[b.start : b.body] + "\n" for b in table_blocks(text)}
    blocks = table_blocks(text)
    covered = bytearray(len(text))
    previous = None
    for chunk in chunk_document(doc, chunk_size=size):
        own = text[chunk.start_char : chunk.end_char]
        table = next((b for b in blocks if b.start <= chunk.start_char < b.end), None)
        allowed = {own} | ({headers[table.start] + own} if table else set())
        assert chunk.text in allowed and own == own.strip()
        assert chunk.token_count == tokens(chunk.text) <= size
        assert len(chunk.text) <= size * MAX_CHARS_PER_TOKEN
        if previous is not None:
            assert chunk.start_char > previous.start_char and chunk.end_char > previous.end_char
        covered[chunk.start_char : chunk.end_char] = b"\1" * len(own)
        previous = chunk
    assert all(seen or c.isspace() for c, seen in zip(text, covered, strict=True))


def test_table_chunks_know_their_pages() -> None:
    doc = table_document(80, pages=3)
    chunks = chunk_document(doc, chunk_size=64)
    table_end = table_blocks(doc.text)[0].end
    assert all(c.page_start == c.page_end == 1 for c in chunks if c.end_char <= table_end)
    assert chunks[-1].page_end == 3 and chunks[-1].start_char > table_end


# ------------------------------------------------------------------------------------ search


async def test_a_table_cell_is_found_with_its_column_name(ingest_env: dict[str, Any],
                                                          corpus: Path, tmp_path: Path) -> None:
    stored = tmp_path / "layout-parser-paper-with-table.pdf"
    shutil.copy(corpus / "pdf/layout-parser-paper-with-table.pdf", stored)
    jobs: RedisJobRepository = ingest_env["jobs"]
    job_id = await jobs.enqueue(UPLOAD_JOB_TYPE, {
        "filename": stored.name, "file_path": str(stored), "collection": "risk-tables",
        "file_size": stored.stat().st_size, "chunk_size": 64})
    worker = UploadWorker(UploadWorkerConfig(
        worker=WorkerConfig(worker_name="upload-tables", retry_delay=0.0),
        job_repo=jobs, document_repo=ingest_env["documents"], vector_repo=ingest_env["vectors"],
        services=ingest_env["services"]))
    async with worker:
        while not (job := await jobs.get_job(job_id)).is_terminal:
            await asyncio.sleep(0.02)
    assert job.status == JobStatus.COMPLETED, job.error
    hits = await SearchService(ingest_env["embedder"], ingest_env["vectors"]).search(
        "risk-tables", "layouts of scanned US newspapers from the 20th century", k=3)
    hit = next(h for h in hits if "| Newspaper [17] | F | - |" in h.text)
    assert "| Dataset | Base Model1 | Large Model | Notes |" in hit.text  # its column names


# ------------------------------------------------------------------- PDF: aligned text


def test_an_aligned_text_table_keeps_rows_and_columns(corpus: Path) -> None:
    """A table drawn without ruling lines (a 10-K printed from HTML): cells from alignment,
    the text around it unchanged."""
    text = parse_document(corpus / "pdf" / "aligned-10k-p14.pdf").text
    [grid] = grids(text)
    assert grid[0] == ["Quarter Ended", "High ($)", "Low ($)", "High ($)", "Low ($)"]
    assert grid[2] == ["June 30,", "3.70", "2.70", "1.36", "0.73"]
    assert grid[4] == ["December 31,", "4.45", "3.67", "1.95", "0.95"]
    assert "under the ticker symbol GLXZ.\nThe following table sets forth" in text
    assert "The Securities and Exchange Commission (the “SEC”) has adopted rules" in text


def test_aligned_text_without_rules_gives_cells_in_their_columns() -> None:
    rows = [["Obligor", "Limit", "Rating"],
            ["Acme Bank", "120", "AA"],
            ["Beta Corp", "80", "BBB+"],
            ["Gamma Ltd", "95", "A-"]]
    chars = synthetic_page(rows, [100.0, 200.0, 260.0])
    [table] = find_aligned_tables(chars)
    assert table.markdown.split("\n")[2:] == [
        "| Acme Bank | 120 | AA |", "| Beta Corp | 80 | BBB+ |", "| Gamma Ltd | 95 | A- |"]
    assert find_aligned_tables(chars, taken=[char.index for char in chars]) == []


def test_an_aligned_cell_wrapped_onto_a_second_line_stays_in_its_row() -> None:
    rows = [["Exhibit", "Description", "Form"],
            ["3.1", "Articles of", "8-K"],
            ["", "Incorporation", ""],  # the description wrapped: no gap, one column
            ["3.2", "Bylaws", "8-K"],
            ["3.3", "Lease", "10-K"]]
    [table] = find_aligned_tables(synthetic_page(rows, [100.0, 200.0, 330.0]))
    assert table.markdown.split("\n")[2:] == [
        "| 3.1 | Articles of Incorporation | 8-K |", "| 3.2 | Bylaws | 8-K |",
        "| 3.3 | Lease | 10-K |"]


def test_an_aligned_table_whose_text_order_holds_other_text_is_not_read() -> None:
    """Text that comes between a table's rows in the page's text order would move below
    the table: such a "table" (a form whose parts are read in another order) is left as
    text."""
    rows = [["Obligor", "Limit", "Rating"], ["Acme Bank", "120", "AA"],
            ["Beta Corp", "80", "BBB+"], ["Gamma Ltd", "95", "A-"]]
    chars = synthetic_page(rows, [100.0, 200.0, 260.0])
    assert len(find_aligned_tables(chars)) == 1
    note = [TextChar(char.index + 10_000, char.text, char.left, char.bottom - 100,
                     char.right, char.top - 100) for char in synthetic_page([["Signed"]], [100.0])]
    cut = next(char.index for char in chars if char.text == "B")  # "Beta Corp" row
    moved = [TextChar(c.index + (20_000 if c.index >= cut else 0), c.text, c.left, c.bottom,
                      c.right, c.top) for c in chars]
    assert find_aligned_tables(moved + note) == []
    assert len(find_aligned_tables(moved + note, in_order=False)) == 1


def test_a_long_page_of_aligned_lines_that_are_no_table_gives_none() -> None:
    """1,500 lines of code in three aligned columns: rejected once per stretch of lines,
    not once per line (each retry reads the lines below it: a million comparisons)."""
    rows = [[f"a{n} = b;", f"c{n} = d;", f"e{n} = f;"] for n in range(1500)]
    chars = [TextChar(c.index, c.text, c.left, c.bottom + 18_000, c.right, c.top + 18_000)
             for c in synthetic_page(rows, [100.0, 200.0, 300.0])]
    assert find_aligned_tables(chars) == []


@pytest.mark.parametrize("rows", [
    [["1.1", "Scope of the policy . . . . . . . .", "3"],  # a table of contents, dot leaders
     ["1.2", "Definitions . . . . . . . . . . . .", "4"],
     ["2.1", "Limits and triggers . . . . . . . .", "7"],
     ["2.2", "Escalation . . . . . . . . . . . .", "9"]],
    [["Introduction", "Market risk", "12"],  # a table of contents without leaders
     ["Credit exposure", "Counterparties", "15"],
     ["Liquidity", "Funding plans", "21"],
     ["Operational", "Incidents", "30"]],
    [["carbon intensity from", "offshore platform engineer", "production in Israel"],
     ["our Eastern Mediterranean", "in Israel was employed by", "is powered by the"],
     ["operations in the year", "our operations since the", "fields as of the year"]],
    [["•", "Credit limits are set by", "the board each year"],  # a list beside text
     ["•", "Exposures are reported", "to the committee"],
     ["•", "Breaches are escalated", "within one day"]],
    [["x = load(path);", "y = clean(x);", "z = {a: b};"],  # code
     ["if (x == y) {", "return z;", "}"],
     ["for (k : ks) {", "sum += k;", "}"]],
])
def test_side_by_side_prose_lists_contents_and_code_are_not_tables(rows: list[list[str]]) -> None:
    chars = synthetic_page(rows, [60.0, 260.0, 460.0])
    assert find_aligned_tables(chars) == []


def test_a_multi_column_prose_page_gives_no_table(corpus: Path) -> None:
    """A two-column paper page (Backus, 1977) whose justified lines have wide gaps (a
    looser detector read four "tables" off it): the detector, given every character of the
    page without the cheap signal's say, finds none, and the page reads as without it."""
    pdf = pdfium.PdfDocument(corpus / "pdf" / "a1977-backus-p21.pdf")
    try:
        page = pdf[0]
        textpage = page.get_textpage()
        try:
            chars = pdf_tables._chars(textpage)
            assert len(chars) > 5000
            assert find_aligned_tables(chars) == []
            assert pdf_parser.page_text_with_tables(page, textpage) is None
        finally:
            textpage.close()
            page.close()
    finally:
        pdf.close()
