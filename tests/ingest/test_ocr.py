"""OCR of scanned PDF pages: the real Tesseract on scans made from the corpus's real PDFs
(tests/data/corpus/README.md says how), in this process and in the isolated parser child."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
import pytest
from scans import (
    CORPUS_PDF,
    MEMO_SENTENCE,
    PAGE_1_SENTENCE,
    PAGE_2_SENTENCE,
    TOO_LITTLE_MEMORY,
    flat,
)

from docworkers.errors import ConfigurationError, NoExtractableTextError, OcrUnavailableError
from docworkers.ingest.chunking import chunk_document
from docworkers.ingest.chunking.tables import table_blocks
from docworkers.ingest.document import ParsedDocument
from docworkers.ingest.parsing import IsolatedParser, ParseLimits, ocr, parse_document
from docworkers.ingest.parsing.ocr import LOW_CONFIDENCE, installed_languages, parse_tsv
from docworkers.ingest.vector_repository import chunk_id, chunk_metadata
from docworkers.settings import Settings

MEMO = CORPUS_PDF / "scanned-fake-memo.pdf"
MIXED = CORPUS_PDF / "mixed-layout-parser-paper-p2-scanned.pdf"


def test_tesseract_and_its_english_pack_are_installed() -> None:
    assert installed_languages() is not None, "tesseract is missing: .ci/run installs it"
    assert {"eng", "osd"} <= (installed_languages() or set())  # osd: orientation detection


def test_a_scanned_page_is_read_by_ocr_with_its_confidence() -> None:
    document = parse_document(MEMO)
    [page] = document.pages
    assert page.number == 1 and page.ocr
    assert page.ocr_confidence is not None and 50 < page.ocr_confidence <= 100
    assert MEMO_SENTENCE in flat(page.text)
    assert document.metadata["ocr_pages"] == [1] and "ocr_warnings" not in document.metadata


def test_only_the_page_without_text_is_ocrd_in_a_digital_pdf() -> None:
    document = parse_document(MIXED)
    first, second = document.pages
    assert (first.number, first.ocr, first.ocr_confidence) == (1, False, None)
    assert PAGE_1_SENTENCE in flat(first.text)
    assert (second.number, second.ocr) == (2, True) and second.ocr_confidence is not None
    assert PAGE_2_SENTENCE in flat(second.text)
    assert document.metadata["ocr_pages"] == [2]


def test_an_image_page_between_text_pages_is_read_and_an_empty_one_skipped() -> None:
    document = parse_document(CORPUS_PDF / "layout-parser-paper-with-empty-pages.pdf")
    assert [(page.number, page.ocr) for page in document.pages] == [(1, False), (3, True),
                                                                    (4, False)]
    assert document.pages[1].text == "This page is intentionally left blank"
    assert document.metadata["ocr_pages"] == [3]  # page 2 has neither text nor writing


def test_a_blank_page_is_not_given_to_tesseract() -> None:
    # With 10 ms per page, every page Tesseract is given is skipped as too slow: the image
    # page is, the blank one is not (no writing: nothing to read, no OCR run, no warning).
    document = parse_document(CORPUS_PDF / "layout-parser-paper-with-empty-pages.pdf",
                              limits=ParseLimits(ocr_page_timeout_seconds=0.01))
    assert [page.number for page in document.pages] == [1, 4]
    assert document.metadata["ocr_skipped_pages"] == [3]
    [warning] = document.metadata["ocr_warnings"]
    assert warning.startswith("page 3 was skipped: OCR did not finish")


def test_a_page_is_blank_only_without_a_darker_pixel() -> None:
    def image(*pixels: int) -> bytes:
        return b"P5\n%d 1\n255\n" % len(pixels) + bytes(pixels)

    assert ocr.is_blank(image(255, ocr.BLANK_LEVEL, 255))
    assert not ocr.is_blank(image(255, ocr.BLANK_LEVEL - 1, 255))  # one faint speck is read
    assert not ocr.is_blank(image(255, 10, 255))  # a PGM whose pixel bytes hold a newline
    pdf = pdfium.PdfDocument(MEMO)
    assert not ocr.is_blank(ocr.render_page(pdf[0], 100)[0])
    blank = pdfium.PdfDocument.new()
    blank.new_page(612, 792)
    assert ocr.is_blank(ocr.render_page(blank[0], 100)[0])


def test_an_upside_down_scan_is_read_the_right_way_up(tmp_path: Path) -> None:
    # The scanned memo's page turned by 180 degrees (/Rotate 180: it shows upside down).
    source = pdfium.PdfDocument(MEMO)
    turned = pdfium.PdfDocument.new()
    turned.import_pages(source, [0])
    turned[0].set_rotation(180)
    turned.save(tmp_path / "upside-down.pdf")
    [page] = parse_document(tmp_path / "upside-down.pdf").pages
    assert page.ocr and MEMO_SENTENCE in flat(page.text)
    assert page.ocr_confidence is not None and page.ocr_confidence > LOW_CONFIDENCE


def test_always_reads_every_page_by_ocr() -> None:
    document = parse_document(MIXED, ocr="always")
    assert [page.ocr for page in document.pages] == [True, True]
    assert document.metadata["ocr_pages"] == [1, 2]
    assert "LayoutParser" in document.pages[0].text  # read from the image this time


def test_never_leaves_a_scan_in_the_typed_no_text_error() -> None:
    with pytest.raises(NoExtractableTextError) as info:
        parse_document(MEMO, ocr="never")
    assert info.value.code == "no_text" and "ocr=never" in info.value.reason
    mixed = parse_document(MIXED, ocr="never")
    assert [page.number for page in mixed.pages] == [1] and "ocr_pages" not in mixed.metadata


def test_chunks_say_which_text_came_from_ocr() -> None:
    document = parse_document(MIXED)
    chunks = chunk_document(document, chunk_size=120)
    on_page_1 = [c for c in chunks if c.page_end == 1]
    on_page_2 = [c for c in chunks if c.page_start == 2]
    assert on_page_1 and on_page_2
    assert all(not c.ocr and c.ocr_confidence is None for c in on_page_1)
    confidence = document.pages[1].ocr_confidence
    assert all(c.ocr and c.ocr_confidence == confidence for c in on_page_2)
    across = [c for c in chunks if c.page_start == 1 and c.page_end == 2]
    assert all(c.ocr and c.ocr_confidence == confidence for c in across)
    stored = chunk_metadata("doc", on_page_2[0], {"ocr": False, "filename": "m.pdf"})
    assert stored["ocr"] is True and stored["ocr_confidence"] == confidence
    plain = chunk_metadata("doc", on_page_1[0], {"ocr": True})  # the chunk decides, not extra
    assert "ocr" not in plain and "ocr_confidence" not in plain
    assert chunk_id("doc", 0) != chunk_id("doc", 1)


def test_the_isolated_child_carries_the_ocr_fields() -> None:
    with IsolatedParser() as parser:
        document = parser.parse(MIXED, filename="mixed.pdf")
    local = parse_document(MIXED)
    assert document.pages == local.pages
    assert document.metadata["ocr_pages"] == [2]


def test_a_page_ocr_cannot_read_is_skipped_with_a_warning_not_the_document() -> None:
    limits = ParseLimits(ocr_max_memory_bytes=TOO_LITTLE_MEMORY)
    with IsolatedParser(limits=limits) as parser:
        document = parser.parse(MIXED, filename="mixed.pdf")
        assert [page.number for page in document.pages] == [1]
        assert document.metadata["ocr_skipped_pages"] == [2]
        [warning] = document.metadata["ocr_warnings"]
        assert warning.startswith("page 2 was skipped: OCR failed") and "32.0 MB" in warning
        assert "ocr_pages" not in document.metadata
        # A scan whose only page cannot be read has no text: the typed error says why.
        with pytest.raises(NoExtractableTextError) as info:
            parser.parse(MEMO, filename="memo.pdf")
        assert "OCR could not read them: page 1 was skipped" in info.value.reason
        assert parser.parse(MIXED, filename="again.pdf").pages[0].number == 1  # still serving


def test_always_keeps_a_text_layer_where_ocr_fails() -> None:
    limits = ParseLimits(ocr_max_memory_bytes=TOO_LITTLE_MEMORY)
    document = parse_document(MIXED, ocr="always", limits=limits)
    [page] = document.pages
    assert (page.number, page.ocr) == (1, False) and PAGE_1_SENTENCE in flat(page.text)
    assert document.metadata["ocr_skipped_pages"] == [2]
    kept, skipped = document.metadata["ocr_warnings"]
    assert kept.startswith("page 1: OCR failed") and kept.endswith("its text layer was kept.")
    assert skipped.startswith("page 2 was skipped: OCR failed")


def test_a_page_past_its_ocr_time_limit_is_skipped() -> None:
    document = parse_document(MIXED, limits=ParseLimits(ocr_page_timeout_seconds=0.01))
    assert [page.number for page in document.pages] == [1]
    assert document.metadata["ocr_skipped_pages"] == [2]
    assert "OCR did not finish within 0.01 s" in document.metadata["ocr_warnings"][0]


def test_pages_past_the_documents_ocr_time_limit_are_skipped() -> None:
    # "always": page 1 is OCR'd first and uses up the document's 1 ms; page 2 is not tried.
    limits = ParseLimits(ocr_timeout_seconds=0.001)
    document = parse_document(MIXED, ocr="always", limits=limits)
    assert [(page.number, page.ocr) for page in document.pages] == [(1, False)]
    assert document.metadata["ocr_skipped_pages"] == [2]
    assert document.metadata["ocr_warnings"][-1] == (
        "page 2 was skipped: the document's OCR time limit of 0.001 s was used up.")


def test_ocr_has_its_own_time_budget_on_top_of_the_parse_limit() -> None:
    # Parsing alone may take 0.2 s here; OCR of a 300 dpi page takes longer than that (loading
    # Tesseract's model alone does), and the child is not killed for it: OCR's budget counts.
    limits = ParseLimits(timeout_seconds=0.2, ocr_timeout_seconds=120.0)
    with IsolatedParser(limits=limits) as parser:
        document = parser.parse(MEMO, filename="memo.pdf")
    assert document.pages[0].ocr and MEMO_SENTENCE in flat(document.pages[0].text)


def test_an_uninstalled_language_pack_is_a_typed_error_naming_the_setting() -> None:
    limits = ParseLimits(ocr_languages="eng+zzz")
    with pytest.raises(OcrUnavailableError) as info:
        parse_document(MEMO, limits=limits)
    assert info.value.code == "ocr_unavailable"
    assert "'zzz'" in info.value.reason and "ocr_languages" in info.value.reason
    assert "tesseract-ocr-zzz" in info.value.reason
    with IsolatedParser(limits=limits) as parser:
        with pytest.raises(OcrUnavailableError):
            parser.parse(MEMO, filename="memo.pdf")
        assert parser.parse(MIXED, filename="mixed.pdf", ocr="never").pages  # no OCR needed


@pytest.mark.parametrize(("fields", "field"), [
    ({"ocr_languages": "eng deu"}, "ocr_languages"),
    ({"ocr_languages": ""}, "ocr_languages"),
    ({"ocr_languages": "eng+"}, "ocr_languages"),
    ({"ocr_dpi": 20}, "ocr_dpi"),
    ({"ocr_dpi": 0}, "ocr_dpi"),
    ({"ocr_page_timeout_seconds": 0}, "ocr_page_timeout_seconds"),
    ({"ocr_timeout_seconds": float("nan")}, "ocr_timeout_seconds"),
    ({"ocr_max_memory_bytes": -1}, "ocr_max_memory_bytes"),
])
def test_invalid_ocr_limits_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ParseLimits(**fields)  # type: ignore[arg-type]
    assert info.value.field == field


def test_the_ocr_languages_setting_is_checked_like_the_limit() -> None:
    assert Settings(ocr_languages="deu+eng").ocr_languages == "deu+eng"
    assert Settings().ocr_languages is None  # the parser's default: ParseLimits().ocr_languages
    assert ParseLimits().ocr_languages == "eng"
    with pytest.raises(ConfigurationError) as info:
        Settings(ocr_languages="deu, eng")
    assert info.value.field == "ocr_languages"


def test_an_unknown_ocr_mode_names_the_option() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_document(MEMO, ocr="sometimes")  # type: ignore[arg-type]
    assert info.value.field == "ocr" and "auto, always, never" in info.value.problem
    with IsolatedParser() as parser, pytest.raises(ConfigurationError):
        parser.parse(MEMO, ocr="sometimes")  # type: ignore[arg-type]


def test_a_digital_pdf_is_not_ocrd() -> None:
    document: ParsedDocument = parse_document(CORPUS_PDF / "fake-memo.pdf")
    assert not document.pages[0].ocr and "ocr_pages" not in document.metadata
    assert MEMO_SENTENCE in flat(document.text)


def test_a_scanned_table_becomes_a_markdown_table_with_its_header() -> None:
    """A ruled table that is only pixels: Tesseract's word boxes and the ruling lines it
    reports give the same rows and columns as a digital table (its '|' misreadings dropped)."""
    text = parse_document(CORPUS_PDF / "single_table.pdf").text
    [block] = table_blocks(text)
    rows = [[" ".join(cell.split()) for cell in line.strip()[1:-1].split("|")]
            for line in text[block.start:block.end].split("\n")]
    assert rows[0][:2] == ["Processing", "total chunks"]
    assert rows[0][3] == "tables mean (std)"
    assert rows[3] == ["Base 256", "32,051", "400.64 (242.04)", "N/A"]
    assert rows[-1] == ["Chipper", "20,843", "260.57 (145.80)", "96.20 (57.53)"]


def _tsv(lines: list[tuple[int, list[tuple[int, str]]]]) -> str:
    """Tesseract TSV for words (left edge in pixels, text) on lines (top in pixels), each
    line its own block, as Tesseract reads the columns of an unruled table; letters 25 px
    wide and 40 px high (300 dpi: 10 pt text)."""
    rows = ["level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth"
            "\theight\tconf\ttext"]
    for block, (top, words) in enumerate(lines, start=1):
        for number, (left, text) in enumerate(words, start=1):
            rows.append(f"5\t1\t{block}\t1\t1\t{number}\t{left}\t{top}\t{25 * len(text)}"
                        f"\t40\t95\t{text}")
    return "\n".join(rows) + "\n"


def test_ocr_words_aligned_without_rules_become_a_table_and_prose_stays_text() -> None:
    """The aligned-text detector of digital pages reads Tesseract's word boxes: a title,
    an unruled table (columns 500 px apart), then a sentence, in that order."""
    lines = [(100, [(100, "Exposure"), (330, "schedule")]),
             (200, [(100, "Obligor"), (600, "Limit"), (1000, "Rating")]),
             (260, [(100, "Acme"), (230, "Bank"), (600, "120"), (1000, "AA")]),
             (320, [(100, "Beta"), (230, "Corp"), (600, "80"), (1000, "BBB+")]),
             (380, [(100, "Gamma"), (255, "Ltd"), (600, "95"), (1000, "A-")]),
             (500, [(100, "Limits"), (270, "are"), (370, "reviewed"), (600, "yearly.")])]
    text = parse_tsv(_tsv(lines), 300).text
    assert text.split("\n") == [
        "Exposure schedule", "",
        "| Obligor | Limit | Rating |", "|---|---|---|",
        "| Acme Bank | 120 | AA |", "| Beta Corp | 80 | BBB+ |", "| Gamma Ltd | 95 | A- |",
        "", "Limits are reviewed yearly."]


def test_a_page_whose_table_detection_fails_keeps_its_ocr_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(words: object, dpi: int) -> None:
        raise ZeroDivisionError("a page no detector expected")

    monkeypatch.setattr(ocr, "ocr_tables", broken)
    text = parse_tsv(_tsv([(100, [(100, "Obligor"), (600, "Limit"), (1000, "Rating")]),
                           (160, [(100, "Acme"), (600, "120"), (1000, "AA")]),
                           (220, [(100, "Beta"), (600, "80"), (1000, "BBB+")])]), 300).text
    assert text.split("\n") == ["Obligor Limit Rating", "", "Acme 120 AA", "", "Beta 80 BBB+"]
