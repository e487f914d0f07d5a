"""bulk_import: a folder, an archive or a list fans out into upload jobs the parent follows."""

from __future__ import annotations

import asyncio
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from jobs_support import LIST, MEMO, MEMO_QUERY, NOTE, JobsEnv, until_finished, worker_config

from docworkers.errors import ConfigurationError, InvalidPayloadError
from docworkers.ingest.document_repository import DocumentStatus
from docworkers.ingest.jobs.bulk_import import (
    BULK_IMPORT_JOB_TYPE,
    BulkImport,
    BulkImportPayload,
    BulkImportWorker,
    BulkImportWorkerConfig,
    parent_tag,
)
from docworkers.ingest.stored_files import ImportLimits, collect_archive, collect_files
from docworkers.ingest.upload_worker import UploadWorker, UploadWorkerConfig
from docworkers.queue import JobFilter, JobStatus
from docworkers.workers import WorkerPool


def bulk_config(env: JobsEnv, **options: Any) -> BulkImportWorkerConfig:
    options.setdefault("poll_interval", 0.05)
    return BulkImportWorkerConfig(worker=worker_config(worker_name="bulk-1"), job_repo=env.jobs,
                                  upload_repo=env.uploads, storage_dir=env.tmp / "storage",
                                  **options)


def pool(env: JobsEnv) -> WorkerPool:
    """A bulk import worker on its queue and an upload worker on the uploads queue."""
    workers = WorkerPool()
    workers.add_worker(BulkImportWorker(bulk_config(env)))
    workers.add_worker(UploadWorker(UploadWorkerConfig(
        worker=worker_config(worker_name="upload-1"), job_repo=env.uploads,
        document_repo=env.documents, vector_repo=env.vectors, services=env.services)))
    return workers


def children(env: JobsEnv, parent_id: str) -> list[str]:
    """The ids of the parent's child jobs on the upload queue."""
    ids: list[str] = env.redis.zrange(env.uploads.keys.all_jobs, 0, -1)  # type: ignore[assignment]
    return sorted(i for i in ids if i.startswith(f"{parent_id}:"))


async def test_a_folder_fans_out_and_the_parent_reports_each_child(env: JobsEnv) -> None:
    folder = env.tmp / "incoming"
    for relative in (MEMO, NOTE, LIST):
        env.stored(relative, "incoming/reports")
    shutil.copy(env.corpus / "text/empty.txt", folder / "empty.txt")  # fails: no text
    shutil.copy(env.corpus / "other/simple.yaml", folder / "simple.yaml")  # not a document
    (folder / ".hidden.txt").write_text("never imported")
    payload = {"source": str(folder), "collection": "imported", "extract_metadata": True}

    parent_id = await env.jobs.enqueue(BULK_IMPORT_JOB_TYPE, payload, priority=5)
    async with pool(env):
        parent = await until_finished(env.jobs, parent_id)
    assert parent.status == JobStatus.COMPLETED, parent.error
    assert parent.progress == 100 and parent.message == "3 of 4 documents imported"
    result = parent.result
    assert (result["total"], result["succeeded"], result["failed"], result["skipped"]) == \
        (4, 3, 1, 1)
    assert [(f["job_id"], f["filename"], f["code"]) for f in result["failures"]] == \
        [(f"{parent_id}:0", "empty.txt", "empty")]
    assert result["skipped_files"] == [{"name": "simple.yaml",
                                        "reason": "not a supported document type"}]
    ids = [f"{parent_id}:{n}" for n in range(4)]
    assert children(env, parent_id) == ids
    tagged = await env.uploads.list_jobs(JobFilter(tags=frozenset({parent_tag(parent_id)})))
    assert sorted(job.id for job in tagged) == ids
    assert all(job.priority == 5 and job.payload["collection"] == "imported" for job in tagged)
    assert all(Path(job.payload["file_path"]).parent == env.tmp / "storage" for job in tagged)
    documents = await env.documents.list_documents("imported")
    assert sorted(d.status for d in documents) == [DocumentStatus.COMPLETED] * 3 + \
        [DocumentStatus.FAILED]
    hits = await env.search("imported", MEMO_QUERY)
    assert hits[0].filename == "fake-memo.pdf" and hits[0].metadata["keywords"]

    # The parent runs again (a crash after it enqueued): same children, nothing new.
    again = await BulkImport(bulk_config(env)).run(BulkImportPayload.parse(payload),
                                                   job_id=parent_id)
    assert again.model_dump(exclude={"processing_time_ms"}) == \
        {k: v for k, v in result.items() if k != "processing_time_ms"}
    assert children(env, parent_id) == ids
    assert len(await env.documents.list_documents("imported")) == 4


async def test_a_zip_archive_is_unpacked_into_storage_and_imported(env: JobsEnv) -> None:
    archive = env.tmp / "batch.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(env.corpus / NOTE, "notes/fake-text.txt")
        zf.write(env.corpus / MEMO, "fake-memo.pdf")
        zf.writestr("../escape.txt", "outside the storage folder")
    job_id = await env.jobs.enqueue(BULK_IMPORT_JOB_TYPE,
                                    {"source": f"file://{archive}", "collection": "zipped"})
    async with pool(env):
        parent = await until_finished(env.jobs, job_id)
    assert parent.status == JobStatus.COMPLETED, parent.error
    assert (parent.result["total"], parent.result["succeeded"]) == (2, 2)
    assert parent.result["skipped_files"] == [
        {"name": "../escape.txt", "reason": "unsafe path (absolute or with '..'): not extracted"}]
    assert not (env.tmp / "escape.txt").exists()
    stored = sorted(p.name for p in (env.tmp / "storage").iterdir())
    assert len(stored) == 2 and all(len(name.split(".")[0]) == 64 for name in stored)
    names = sorted(d.filename for d in await env.documents.list_documents("zipped"))
    assert names == ["fake-memo.pdf", "fake-text.txt"]


def test_hostile_archives_are_refused_or_defused(tmp_path: Path) -> None:
    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("/etc/cron.d/job.txt", "absolute")
        zf.writestr("a/../../b.txt", "climbs out")
        zf.writestr("C:/windows.txt", "drive letter")
        link = zipfile.ZipInfo("link.txt")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("big.txt", "x" * 5000)
        zf.writestr("program.exe", "MZ")
        zf.writestr(".git/config.txt", "hidden")
        zf.writestr("fine.md", "# Fine\n\nA small document.")
    storage = tmp_path / "storage"
    found = collect_archive(archive, storage, ImportLimits(max_file_bytes=1000))
    assert [f.filename for f in found.files] == ["fine.md"]
    reasons = {s.name: s.reason for s in found.skipped}
    assert set(reasons) == {"/etc/cron.d/job.txt", "a/../../b.txt", "C:/windows.txt",
                            "link.txt", "big.txt", "program.exe"}
    assert reasons["link.txt"].startswith("symbolic link")
    assert reasons["big.txt"] == "larger than max_file_bytes=1000"
    assert [p.name for p in storage.iterdir()] == [found.files[0].path.name]

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in range(3):
            zf.writestr(f"part{n}.txt", "0" * 100_000)  # 300 kB from a few hundred bytes
    assert bomb.stat().st_size < 3000
    with pytest.raises(InvalidPayloadError, match="max_total_bytes"):
        collect_archive(bomb, tmp_path / "bomb-storage", ImportLimits(max_total_bytes=150_000))
    assert not any((tmp_path / "bomb-storage").glob(".incoming-*"))
    with pytest.raises(InvalidPayloadError, match="max_files"):
        collect_archive(bomb, tmp_path / "s", ImportLimits(max_files=2))
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(InvalidPayloadError, match="not a readable zip"):
        collect_archive(not_zip, tmp_path / "s", ImportLimits())


def test_a_list_takes_paths_and_file_uris_and_skips_the_rest(env: JobsEnv) -> None:
    memo, note = env.stored(MEMO), env.stored(NOTE)
    found = collect_files([str(memo), note.as_uri(), "s3://bucket/key.pdf",
                           str(env.tmp / "missing.pdf"), str(env.corpus / "other/fake.go")],
                          env.tmp / "storage", ImportLimits())
    assert [f.filename for f in found.files] == ["fake-memo.pdf", "fake-text.txt"]
    assert [s.reason for s in found.skipped] == [
        "unsupported URI: use a local path or file://", "no such file",
        "not a supported document type"]


async def test_cancelling_the_parent_cancels_the_children_not_yet_run(env: JobsEnv) -> None:
    folder = env.tmp / "incoming"
    env.stored(MEMO, "incoming")
    env.stored(NOTE, "incoming")
    parent_id = await env.jobs.enqueue(BULK_IMPORT_JOB_TYPE,
                                       {"source": str(folder), "collection": "never"})
    async with BulkImportWorker(bulk_config(env)):  # no upload worker: children wait
        while len(children(env, parent_id)) < 2:
            await asyncio.sleep(0.02)
        assert await env.jobs.cancel(parent_id) == "requested"
        parent = await until_finished(env.jobs, parent_id)
    assert parent.status == JobStatus.CANCELLED
    assert {job.status for job in await env.uploads.get_jobs(children(env, parent_id))} == \
        {JobStatus.CANCELLED}


def test_the_upload_queue_must_be_another_queue(env: JobsEnv) -> None:
    with pytest.raises(ConfigurationError, match="upload_repo"):
        BulkImportWorkerConfig(worker=worker_config(), job_repo=env.jobs, upload_repo=env.jobs,
                               storage_dir=env.tmp)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"collection": "docs"}, "source"),
        ({"source": [], "collection": "docs"}, "source"),
        ({"source": "/data", "collection": "docs", "chunking_strategy": "magic"},
         "chunking_strategy"),
        ({"source": "/data", "collection": "docs", "chunk_size": 10, "chunk_overlap": 10},
         "chunk_overlap"),
        ({"source": "/data", "collection": "docs", "num_questions": 11}, "num_questions"),
        ({"source": "/data", "collection": "docs", "recursive": True}, "recursive"),
        ({"source": "/data"}, "collection"),
    ],
)
def test_invalid_payloads_say_what_is_wrong(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayloadError, match=message):
        BulkImportPayload.parse(payload)
