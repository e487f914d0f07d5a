"""Spreadsheets, slides, legacy Word and email: real files through the isolated parser.

The files are in tests/data/corpus (formats/ and docx/*.doc; see its README): each yields its
known text, a sheet's cell comes out in its row and column, and damaged, encrypted and
unsupported versions end in a typed error.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from docworkers.errors import (
    CorruptDocumentError,
    DocumentError,
    DocumentTooLargeError,
    EncryptedDocumentError,
    UnsupportedDocumentTypeError,
)
from docworkers.ingest.parsing import IsolatedParser, ParseLimits, detect_kind, parse_document
from docworkers.ingest.parsing.legacy_doc import ANTIWORD

FORMATS = "formats"


@pytest.fixture(scope="module")
def parser() -> Iterator[IsolatedParser]:
    with IsolatedParser() as isolated:
        yield isolated


def table_rows(text: str) -> list[list[str]]:
    """The cells of each Markdown table line in ``text``."""
    return [[cell.strip() for cell in line.strip()[1:-1].split(" | ")]
            for line in text.splitlines() if line.startswith("| ")]


@pytest.mark.parametrize(
    ("relative", "kind", "known"),
    [
        ("docx/simple.doc", "doc", ["This is my first thought. This is my second thought.",
                                    "DOYLESTOWN, PA 18901"]),
        ("docx/fake.doc", "doc", ["Lorem ipsum dolor sit amet."]),
        ("docx/fake-doc-emphasized-text.doc", "doc", ["I am a bold italic bold-italic text."]),
        (f"{FORMATS}/stanley-cups.xlsx", "xlsx", ["## Stanley Cups Since 67", "Maple Leafs"]),
        (f"{FORMATS}/tests-example.xls", "xls",
         ["Bagpipes are awesome.", "What C datatypes are 8 bits? (assume i386)"]),
        (f"{FORMATS}/stanley-cups.csv", "csv", ["| Blues | STL | 1 |"]),
        (f"{FORMATS}/fake-power-point-table.pptx", "pptx",
         ["## Slide 1: A Slide with a Table", "| Tangerine | Pink | Aqua |"]),
        (f"{FORMATS}/favorite-things.pptx", "pptx",
         ["## Slide 2: Analysis", "DOYLESTOWN, PA 18901", "Notes: This is my third thought."]),
        (f"{FORMATS}/fake-email-attachment.eml", "eml",
         ["# Fake email with attachment", "From: Mallori Harrell <mallori@unstructured.io>",
          "Here's the attachments!"]),
        (f"{FORMATS}/fake-email.msg", "msg",
         ["# Test Email", "From: Matthew Robinson <mrobinson@unstructured.io>",
          "This is a test email to use for unit tests.", "- Violets are blue"]),
    ],
)
def test_each_format_yields_its_known_text(parser: IsolatedParser, corpus: Path, relative: str,
                                           kind: str, known: list[str]) -> None:
    document = parser.parse(corpus / relative)
    assert document.kind == kind
    for text in known:
        assert text in document.text


def test_a_sheet_cell_comes_out_in_its_row_and_column(parser: IsolatedParser,
                                                      corpus: Path) -> None:
    book = parser.parse(corpus / FORMATS / "stanley-cups.xlsx")
    assert [page.number for page in book.pages] == [1, 2]
    assert book.metadata["sheet_count"] == 2
    rows = table_rows(book.pages[1].text)
    column = rows[rows.index(["Team", "Location", "Stanley Cups"])].index("Stanley Cups")
    leafs = next(row for row in rows if row[0] == "Maple Leafs")
    assert leafs[column] == "0"  # "Stanley Cups Since 67": the second sheet's own value
    assert table_rows(book.pages[0].text)[-1] == ["Maple Leafs", "TOR", "13"]

    legacy = parser.parse(corpus / FORMATS / "tests-example.xls")
    fib = next(row for row in table_rows(legacy.pages[0].text) if row[0] == "FIB")
    assert fib[:5] == ["FIB", "The student activities fee is", "95",
                       "dollars for students enrolled in", "19"]

    semicolons = parser.parse(corpus / FORMATS / "semicolon-delimited.csv")
    assert ["sed, do", "eiusmod", "tempor incididunt"] in table_rows(semicolons.text)
    assert [page.number for page in semicolons.pages] == [None]  # a CSV has no pages


def test_slides_are_pages_with_their_numbers_and_notes(parser: IsolatedParser,
                                                       corpus: Path) -> None:
    deck = parser.parse(corpus / FORMATS / "favorite-things.pptx")
    assert [page.number for page in deck.pages] == [1, 2]
    assert deck.pages[0].text.startswith("## Slide 1: A few of my favorite things")
    assert "Notes: This is my first thought." in deck.pages[0].text
    assert deck.metadata["page_count"] == 2 and deck.metadata["title"] == "Favorite things"


def test_word_files_are_read_by_antiword_or_from_the_piece_table(parser: IsolatedParser,
                                                                 corpus: Path) -> None:
    assert shutil.which(ANTIWORD), "antiword is missing: .ci/run installs it"
    tables = parser.parse(corpus / "docx/fake-doc-emphasized-text.doc")
    assert tables.metadata["extracted_by"] == "antiword"
    assert ["A bold italic bold-italic example", "A Link example"] in table_rows(tables.text)
    small = parser.parse(corpus / "docx/simple.doc")  # antiword: "too small to handle"
    assert small.metadata["extracted_by"] == "piece_table"
    assert small.metadata["author"] == "python-docx"


def test_format_is_decided_from_the_content_not_the_name(corpus: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "cups.pdf"
    shutil.copy(corpus / FORMATS / "stanley-cups.xlsx", renamed)
    assert parse_document(renamed).kind == "xlsx"
    workbook_as_doc = tmp_path / "sheet.doc"  # an OLE2 file: its streams decide
    shutil.copy(corpus / FORMATS / "tests-example.xls", workbook_as_doc)
    assert parse_document(workbook_as_doc).kind == "xls"
    outlook = (corpus / FORMATS / "fake-email.msg").read_bytes()
    assert detect_kind(outlook[:65536], "mail.bin") == "msg"


def test_email_attachments_are_saved_once_by_content(corpus: Path, tmp_path: Path) -> None:
    saved = tmp_path / "storage"
    saved.mkdir()
    mail = corpus / FORMATS / "memo-with-attachments.eml"
    first = parse_document(mail, attachments_dir=saved)
    again = parse_document(mail, attachments_dir=saved)
    assert first.metadata == again.metadata
    listed = first.metadata["attachments"]
    assert [item["filename"] for item in listed] == ["fake-memo.pdf", "simple.docx", "logo.png"]
    assert listed[2]["skipped"] == "not a supported document type"
    files = sorted(path.name for path in saved.iterdir())
    assert files == sorted(f"{item['sha256']}{Path(item['filename']).suffix}"
                           for item in listed[:2])
    assert (saved / files[0]).read_bytes() in {(corpus / "pdf/fake-memo.pdf").read_bytes(),
                                               (corpus / "docx/simple.docx").read_bytes()}
    assert "Attachments: fake-memo.pdf, simple.docx, logo.png" in first.text
    outlook = parse_document(corpus / FORMATS / "fake-email-attachment.msg",
                             attachments_dir=saved)
    [attached] = outlook.metadata["attachments"]
    assert attached["filename"] == "fake-attachment.txt"
    assert (saved / f"{attached['sha256']}.txt").read_text() == "Hey this is a fake attachment!"


def _truncated(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    return target


@pytest.mark.parametrize(
    "relative",
    ["docx/simple.doc", f"{FORMATS}/tests-example.xls", f"{FORMATS}/stanley-cups.xlsx",
     f"{FORMATS}/favorite-things.pptx", f"{FORMATS}/fake-email.msg"],
)
def test_a_damaged_copy_of_each_format_is_corrupt(parser: IsolatedParser, corpus: Path,
                                                  tmp_path: Path, relative: str) -> None:
    damaged = _truncated(corpus / relative, tmp_path / Path(relative).name)
    with pytest.raises(CorruptDocumentError, match="damaged"):
        parser.parse(damaged)


@pytest.mark.parametrize(
    ("name", "content", "error", "hint"),
    [
        ("notes.eml", b"just some words, no headers at all\n", CorruptDocumentError,
         "no email headers"),
        ("mail.eml", bytes(range(256)) * 8, CorruptDocumentError, "not an EML file"),
        ("table.csv", bytes(range(256)) * 8, CorruptDocumentError, "not a CSV file"),
        ("slides.ppt", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "PowerPoint Document".encode(
            "utf-16-le") + b"\x00" * 200, UnsupportedDocumentTypeError, r"\.pptx"),
    ],
)
def test_bad_email_csv_and_ppt_files_get_typed_errors(tmp_path: Path, name: str,
                                                      content: bytes, error: type[DocumentError],
                                                      hint: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=hint):
        parse_document(path)


def test_a_far_away_cell_does_not_blow_a_small_workbook_up(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Counterparty", "Limit"])
    sheet.append(["Bank A", 5_000_000])
    sheet["XFD1048576"] = "stray note"  # the sheet now states its size as A1:XFD1048576
    path = tmp_path / "limits.xlsx"
    book.save(path)
    document = parse_document(path, limits=ParseLimits(timeout_seconds=60))
    assert table_rows(document.text) == [["Counterparty", "Limit", ""],
                                         ["Bank A", "5000000", ""], ["", "", "stray note"]]


def test_a_csv_cell_longer_than_the_csv_modules_default_cap_is_kept(tmp_path: Path) -> None:
    long_cell = "word " * 40_000  # 200 KB, over the csv module's default 128 KiB field cap
    path = tmp_path / "notes.csv"
    path.write_text(f'id,note\n1,"{long_cell}"\n')
    [header, _rule, row] = parse_document(path).text.splitlines()
    assert header == "| id | note |" and row.startswith("| 1 | word word") \
        and row.count("word") == 40_000


def test_an_email_part_in_an_unknown_charset_keeps_what_decodes(tmp_path: Path) -> None:
    path = tmp_path / "odd.eml"
    path.write_bytes(b"From: a@example.com\r\nSubject: Exposure limits\r\n"
                     b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n"
                     b"The limit for counterparty A is 5 million.\r\n")
    assert "The limit for counterparty A is 5 million." in parse_document(path).text


SMIME_HEAD = b"From: a@example.com\r\nSubject: Limits\r\nMIME-Version: 1.0\r\n"


def test_a_clear_signed_email_is_read_and_sealed_ones_say_why_not(tmp_path: Path) -> None:
    signed = tmp_path / "signed.eml"
    signed.write_bytes(
        SMIME_HEAD + b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
        b' micalg=sha-256; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
        b"The limit for counterparty A is 5 million.\r\n--b\r\nContent-Type: "
        b'application/pkcs7-signature; name="smime.p7s"\r\nContent-Transfer-Encoding: '
        b"base64\r\n\r\nMIIBAA==\r\n--b--\r\n")
    assert "The limit for counterparty A is 5 million." in parse_document(signed).text
    for smime_type, error in (("enveloped-data", EncryptedDocumentError),
                              ("signed-data", UnsupportedDocumentTypeError)):
        sealed = tmp_path / f"{smime_type}.eml"
        sealed.write_bytes(
            SMIME_HEAD + b"Content-Type: application/pkcs7-mime; smime-type="
            + smime_type.encode() + b'; name="smime.p7m"\r\nContent-Transfer-Encoding: '
            b"base64\r\n\r\nMIIBAA==\r\n")
        with pytest.raises(error, match="S/MIME"):
            parse_document(sealed)


@pytest.mark.parametrize(
    "relative", [f"{FORMATS}/password_protected.xlsx", f"{FORMATS}/fake-encrypted.msg"],
)
def test_encrypted_files_say_so(parser: IsolatedParser, corpus: Path, relative: str) -> None:
    with pytest.raises(EncryptedDocumentError, match=r"encrypted|password"):
        parser.parse(corpus / relative)


def test_a_zip_bomb_workbook_is_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\x00" * (8 * 1024 * 1024))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DocumentTooLargeError, match=r"unpacks to 8\.0 MB"):
        parse_document(bomb, limits=ParseLimits(max_file_bytes=1024 * 1024))
