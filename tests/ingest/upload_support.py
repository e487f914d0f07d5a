"""Helpers of the upload-worker tests: a corpus file stored as an upload stores it, and an
upload worker on the ``ingest_env`` fixture's real Redis, Chroma and model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.workers import WorkerConfig


def make_worker(env: dict[str, Any], name: str = "upload-1", **config: Any) -> UploadWorker:
    """An upload worker that retries at once (``config``: more WorkerConfig fields)."""
    config.setdefault("retry_delay", 0.0)
    return UploadWorker(UploadWorkerConfig(
        worker=WorkerConfig(worker_name=name, **config), job_repo=env["jobs"],
        document_repo=env["documents"], vector_repo=env["vectors"], services=env["services"],
    ))


def payload(corpus: Path, relative: str, tmp_path: Path, **fields: Any) -> dict[str, Any]:
    """The upload payload of corpus file ``relative``, copied into ``tmp_path/uploads``."""
    stored = tmp_path / "uploads" / Path(relative).name
    stored.parent.mkdir(exist_ok=True)
    shutil.copy(corpus / relative, stored)
    return {"filename": stored.name, "file_path": str(stored), "collection": "risk-docs",
            "file_size": stored.stat().st_size, **fields}
