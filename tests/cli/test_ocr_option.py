"""``--ocr`` on ``ingest`` and ``import``: checked before anything is stored or queued, and a
scanned PDF ingested here is found by ``search``, whose table says the text came from OCR."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
MODES = "Input should be 'auto', 'always' or 'never'"


def test_an_unknown_ocr_mode_is_refused_naming_the_option(
        cli_env: dict[str, str], cli: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    for command in (("ingest", "--no-wait"), ("ingest", "--wait"), ("import",)):
        result = cli(*command, str(tmp_path / "a.txt"), "--ocr", "sometimes")
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == f"error: invalid option --ocr: {MODES}"
    submitted = cli("jobs", "submit", "document_upload", "-p", json.dumps(
        {"filename": "a.txt", "file_path": str(tmp_path / "a.txt"), "ocr": "often"}))
    assert submitted.exit_code == 2 and f"invalid payload: ocr: {MODES}" in submitted.stderr
    stats = cli("stats", "--json")
    assert sum(json.loads(stats.stdout)["by_status"].values()) == 0
    assert not Path(cli_env["DOCWORKERS_STORAGE_DIR"]).exists()


def test_a_scan_ingested_here_is_found_and_shown_as_ocr(
        cli_env: dict[str, str], cli: Callable[..., Result], tmp_path: Path) -> None:
    scan = tmp_path / "docs" / "memo-scan.pdf"
    scan.parent.mkdir()
    shutil.copy(CORPUS / "pdf" / "scanned-fake-memo.pdf", scan)
    refused = cli("ingest", str(scan), "--collection", "scans", "--ocr", "never")
    assert refused.exit_code != 0 and "ocr=never" in refused.output
    ingested = cli("ingest", str(scan), "--collection", "scans")
    assert ingested.exit_code == 0, ingested.output
    [hit] = json.loads(cli("search", "blankets and laptops delivered", "--collection", "scans",
                           "-k", "1", "--json").stdout)
    assert hit["ocr"] is True and 50 < hit["ocr_confidence"] <= 100 and hit["page_start"] == 1
    assert "10,000 blankets" in hit["text"]
    table = cli("search", "blankets and laptops delivered", "--collection", "scans", "-k", "1")
    assert table.exit_code == 0, table.output
    assert f"OCR {hit['ocr_confidence']:.0f}%" in table.stdout, table.stdout  # under the page
