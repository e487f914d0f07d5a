"""Finding documents and storing them by content: no servers needed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from docworkers.cli.context import UsageError
from docworkers.cli.files import bare_filename, discover, store


def write(path: Path, data: bytes = b"text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_discover_walks_folders_by_extension_and_prunes_hidden_ones(tmp_path: Path) -> None:
    report = write(tmp_path / "in" / "Report.PDF")
    notes = write(tmp_path / "in" / "deep" / "notes.md")
    write(tmp_path / "in" / "main.go")
    write(tmp_path / "in" / "deep" / "data.yaml")
    write(tmp_path / "in" / ".git" / "readme.txt")
    write(tmp_path / "in" / ".hidden.txt")
    loose = write(tmp_path / "loose.txt")
    found = discover([tmp_path / "in", loose, loose])
    assert found.documents == [report, notes, loose]
    assert sorted(p.name for p in found.skipped) == ["data.yaml", "main.go"]


def test_discover_finds_legacy_office_sheets_slides_and_email(tmp_path: Path) -> None:
    names = ["book.xls", "book.xlsx", "deck.pptx", "mail.eml", "mail.msg", "memo.doc",
             "table.csv"]
    paths = [write(tmp_path / name) for name in names]
    found = discover([tmp_path])
    assert found.documents == paths and found.skipped == []


def test_discover_excludes_prefixes_and_refuses_missing_paths(tmp_path: Path) -> None:
    write(tmp_path / "LICENSE-NOTICE.txt")
    keep = write(tmp_path / "a.txt")
    assert discover([tmp_path], exclude=("LICENSE",)).documents == [keep]
    with pytest.raises(UsageError, match="no such file or folder"):
        discover([tmp_path / "missing"])


def test_store_names_copies_by_content_once(tmp_path: Path) -> None:
    storage = tmp_path / "store"
    first = store(write(tmp_path / "a" / "doc.TXT", b"same bytes"), storage)
    second = store(write(tmp_path / "b" / "other.txt", b"same bytes"), storage)
    digest = hashlib.sha256(b"same bytes").hexdigest()
    assert first.path == second.path == (storage / f"{digest}.txt").resolve()
    assert first.path.read_bytes() == b"same bytes" and first.size == 10
    assert (first.filename, second.filename) == ("doc.TXT", "other.txt")
    assert sorted(p.name for p in storage.iterdir()) == [f"{digest}.txt"]  # no temp files


def test_the_stored_name_never_comes_from_the_file_name(tmp_path: Path) -> None:
    odd = write(tmp_path / "..\\..\\evil name.txt", b"x")
    stored = store(odd, tmp_path / "store")
    assert stored.path.parent == (tmp_path / "store").resolve()
    assert "/" not in stored.filename and "\\" not in stored.filename
    assert bare_filename(Path("x" * 300 + ".md")).endswith(".md")
    assert len(bare_filename(Path("x" * 300 + ".md"))) == 255
