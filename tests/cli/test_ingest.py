"""``docworkers ingest`` and ``docworkers worker`` against real Redis, Chroma and the model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from parser_children import parser_children
from typer.testing import Result

from docworkers.ingest.jobs.kinds import JOB_TYPES

SHORT_TEXT = "text/fake-text.txt"


def folder(tmp_path: Path, corpus: Path, files: dict[str, str]) -> Path:
    """A folder holding corpus files under new relative names."""
    root = tmp_path / "input"
    for target, source in files.items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus / source, path)
    return root


def test_ingest_waits_shows_progress_and_fails_on_a_trap_file(
        cli_env: dict[str, str], cli: Callable[..., Result], corpus: Path,
        tmp_path: Path) -> None:
    root = folder(tmp_path, corpus, {
        "fake-text.txt": SHORT_TEXT, "sub/page.html": "html/fake-html.html",
        "locked.pdf": "pdf/password.pdf", "config.yaml": "other/simple.yaml",
        ".cache/ignored.txt": SHORT_TEXT,
    })
    result = cli("ingest", str(root), "--collection", "cli-docs")
    assert result.exit_code == 1, result.output
    assert "Found 3 documents, skipping 1 that are not documents" in result.stderr
    assert "all documents" in result.stderr  # the live board's overall row
    summary = result.stdout
    assert "Ingested into collection 'cli-docs'" in summary
    locked = next(line for line in summary.splitlines() if "locked.pdf" in line)
    assert "failed" in locked and "encrypted" in locked
    assert "2 ingested" in summary and "1 failed" in summary and "1 skipped" in summary
    stored = sorted(p.name for p in Path(cli_env["DOCWORKERS_STORAGE_DIR"]).iterdir())
    assert len(stored) == 3 and all(len(name.split(".")[0]) == 64 for name in stored)

    listed = cli("documents", "list", "--collection", "cli-docs", "--json")
    assert listed.exit_code == 0, listed.output
    statuses = {d["filename"]: d["status"] for d in json.loads(listed.stdout)}
    assert statuses == {"fake-text.txt": "completed", "page.html": "completed",
                        "locked.pdf": "failed"}


@pytest.mark.parametrize(("args", "message"), [
    (["--chunk-size", "100", "--chunk-overlap", "100"], "chunk_overlap"),
    (["--strategy", "magic"], "unknown strategy 'magic'"),
    (["--collection", "x"], "collection"),
])
def test_bad_options_are_usage_errors(cli_env: dict[str, str], cli: Callable[..., Result],
                                      tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "a.txt").write_text("hello")
    result = cli("ingest", str(tmp_path / "a.txt"), *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not Path(cli_env["DOCWORKERS_STORAGE_DIR"]).exists()  # nothing was stored


def test_a_folder_without_documents_or_a_missing_path_is_a_usage_error(
        cli_env: dict[str, str], cli: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "main.go").write_text("package main")
    before = parser_children()
    empty = cli("ingest", str(tmp_path / "only"))
    assert empty.exit_code == 2 and "no documents to ingest (1 file(s) skipped" in empty.stderr
    missing = cli("ingest", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
    # ingest --wait starts its parser's child before it looks at the paths: gone again
    assert not parser_children() - before


def test_ingest_leaves_no_parser_child_behind(cli_env: dict[str, str],
                                             cli: Callable[..., Result], corpus: Path,
                                             tmp_path: Path) -> None:
    """The parser started first (see Runtime.start_parser) parses the documents and is
    closed at the end, like the one the services used to start."""
    root = folder(tmp_path, corpus, {"fake-text.txt": SHORT_TEXT})
    before = parser_children()
    result = cli("ingest", str(root), "--collection", "cli-early")
    assert result.exit_code == 0, result.output
    assert "1 ingested" in result.stdout
    assert not parser_children() - before


def test_worker_processes_need_a_chroma_server(cli_env: dict[str, str],
                                               cli: Callable[..., Result]) -> None:
    result = cli("worker", "--processes", "2")
    assert result.exit_code == 2
    assert "DOCWORKERS_CHROMA_PATH" in result.stderr and "one writing process" in result.stderr


def _job(cli: Callable[..., Result], job_id: str) -> dict[str, object]:
    shown = cli("jobs", "show", job_id, "--json")
    assert shown.exit_code == 0, shown.output
    return dict(json.loads(shown.stdout))


def test_no_wait_enqueues_and_a_worker_process_runs_it_until_sigterm(
        background: Callable[..., subprocess.Popen[bytes]], cli: Callable[..., Result],
        corpus: Path, tmp_path: Path) -> None:
    root = folder(tmp_path, corpus, {"notes.txt": SHORT_TEXT, "main.go": "other/fake.go",
                                     "site.yaml": "other/simple.yaml"})
    queued = cli("ingest", "--no-wait", str(root))
    assert queued.exit_code == 0, queued.output
    assert "1 queued, 2 skipped (not documents)" in queued.stdout
    job_id = next(line.split("│")[3].strip() for line in queued.stdout.splitlines()
                  if "notes.txt" in line)
    assert _job(cli, job_id)["status"] == "queued"

    worker = background("worker", "worker", "--concurrency", "2")
    deadline = time.monotonic() + 60
    while (job := _job(cli, job_id))["status"] != "completed":
        assert job["status"] in ("queued", "processing"), job
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        assert time.monotonic() < deadline, "the worker did not finish the job in 60 s"
        time.sleep(0.3)
    stats = json.loads(cli("stats", "--json").stdout)
    assert {w["pid"] for w in stats["workers"]} == {worker.pid}
    assert len(stats["workers"]) == len(JOB_TYPES)  # one worker per job type
    assert stats["by_status"]["completed"] == 1 and stats["success_rate"] == 1.0
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=40) == 0, (tmp_path / "worker.log").read_text()
    output = (tmp_path / "worker.log").read_text()
    assert "SIGTERM received: stopping" in output and "Traceback" not in output
    assert json.loads(cli("stats", "--json").stdout)["workers"] == []  # unregistered


def test_files_over_the_upload_limit_are_rejected_before_enqueueing(
        cli_env: dict[str, str], cli: Callable[..., Result], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCWORKERS_MAX_UPLOAD_BYTES", "100")
    (tmp_path / "small.txt").write_text("a" * 50)
    (tmp_path / "big.txt").write_text("b" * 200)
    result = cli("ingest", "--no-wait", str(tmp_path / "small.txt"), str(tmp_path / "big.txt"))
    assert result.exit_code == 1, result.output
    big = next(line for line in result.stdout.splitlines() if "big.txt" in line)
    assert "rejected" in big and "1 queued, 1 failed" in result.stdout
    assert "too_large: 200 B is over DOCWORKERS_MAX_UPLOAD_BYTES" in result.stdout
