"""The root package: a short ``__all__`` a user starts from, names loaded on first use, and the
names it used to export still importable from it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import docworkers

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_root_exports_the_names_a_user_starts_from() -> None:
    assert len(docworkers.__all__) <= 13  # 13th: SyncJobProducer, the producer without a loop
    for name in docworkers.__all__:
        assert getattr(docworkers, name) is not None, name
    assert set(docworkers.__all__) <= set(dir(docworkers))
    example = re.search(r"from docworkers import \(([^)]*)\)", README.read_text())
    assert example is not None
    assert {n.strip() for n in example.group(1).split(",")} <= set(docworkers.__all__)


def test_former_root_names_still_load_from_their_modules() -> None:
    from docworkers import SearchService, UploadWorker, backoff_delay

    assert SearchService is importlib.import_module("docworkers.ingest.search").SearchService
    assert UploadWorker.__module__ == "docworkers.ingest.upload_worker"
    assert backoff_delay is importlib.import_module("docworkers.workers").backoff_delay
    assert "SearchService" not in docworkers.__all__


def test_the_jobs_error_record_is_not_a_root_name() -> None:
    """``JobError`` is the exception base in docworkers.errors; the job's error record is
    ``docworkers.queue.JobErrorInfo``. The root names neither, so neither is mistaken for the
    other."""
    with pytest.raises(AttributeError):
        docworkers.JobError  # noqa: B018
