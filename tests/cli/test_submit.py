"""``docworkers jobs submit``, ``collections reindex`` and ``worker --type`` on real Redis,
Chroma and the model; the chunks are written straight into Chroma so no parser is needed."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from typer.testing import Result

from docworkers.ingest.document import Chunk
from docworkers.ingest.document_repository import (
    DocumentRecord,
    DocumentRepository,
    DocumentStatus,
)
from docworkers.ingest.vector_store import ChromaVectorRepository

TEXTS = ["Knead the dough for ten minutes, then let it rise for an hour.",
         "Bake the bread at 220 degrees until the crust is golden."]


def seed(chroma: str, embedder: Any, physical: str, redis_url: str | None = None,
         collection: str = "library", count: int = 2) -> list[str]:
    """``count`` documents of two chunks each in the Chroma collection ``physical``, and (with
    ``redis_url``) completed registry entries in the logical ``collection``; their ids."""

    async def main() -> list[str]:
        ids = [f"{n:032x}" for n in range(1, count + 1)]
        with ChromaVectorRepository.from_path(chroma) as vectors:  # lock released after
            for document_id in ids:
                chunks = [Chunk(index=i, text=t, start_char=0, end_char=len(t), token_count=9)
                          for i, t in enumerate(TEXTS)]
                vectors.replace_document(physical, document_id, chunks, embedder.embed(TEXTS),
                                         [{"filename": "bread.md"}] * len(chunks))
        if redis_url:
            client = aioredis.Redis.from_url(redis_url, decode_responses=True)
            documents = DocumentRepository(client)
            for document_id in ids:
                await documents.register(DocumentRecord(
                    document_id=document_id, collection=collection, filename="bread.md",
                    status=DocumentStatus.COMPLETED))
            await client.aclose()
        return ids

    return asyncio.run(main())


def chunks(chroma: str, physical: str, document_id: str) -> int:
    with ChromaVectorRepository.from_path(chroma) as vectors:
        return vectors.count_document_chunks(physical, document_id)


def stats(cli: Callable[..., Result]) -> dict[str, Any]:
    shown = cli("stats", "--json")
    assert shown.exit_code == 0, shown.output
    return dict(json.loads(shown.stdout))


def test_a_worker_process_runs_a_delete_submitted_with_the_cli(
        background: Callable[..., subprocess.Popen[bytes]], cli_env: dict[str, str],
        cli: Callable[..., Result], embedder: Any, tmp_path: Path) -> None:
    chroma, queue = cli_env["DOCWORKERS_CHROMA_PATH"], cli_env["DOCWORKERS_QUEUE"]
    first, second = seed(chroma, embedder, "library", cli_env["DOCWORKERS_REDIS_URL"])
    worker = background("worker", "worker", "-t", "document_delete",
                        "--type", "collection_delete")
    deadline = time.monotonic() + 60
    while len(stats(cli)["workers"]) < 2:  # registered before start() returns
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        assert time.monotonic() < deadline, "the worker did not start in 60 s"
        time.sleep(0.2)
    assert {w["pid"] for w in stats(cli)["workers"]} == {worker.pid}

    done = cli("jobs", "submit", "document_delete", "--payload",
               json.dumps({"document_id": first}), "--wait", "--json")
    assert done.exit_code == 0, done.output
    job = json.loads(done.stdout)
    assert job["status"] == "completed" and job["queue"] == f"{queue}.document_delete"
    assert job["result"] == {"document_id": first, "deleted": True,
                             "collection": "library", "chunks_deleted": 2}
    shown = cli("jobs", "show", job["id"], "--json")  # found on its type's queue
    assert shown.exit_code == 0 and json.loads(shown.stdout)["status"] == "completed"
    assert cli("documents", "show", first).exit_code == 1  # the registry entry is gone
    assert stats(cli)["completed_by_type"] == {"document_delete": 1}
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=40) == 0, (tmp_path / "worker.log").read_text()
    output = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in output and "on queue cli-" in output
    assert chunks(chroma, "library", first) == 0 and chunks(chroma, "library", second) == 2


def test_an_invalid_payload_or_type_is_a_red_line_and_nothing_is_queued(
        cli_env: dict[str, str], cli: Callable[..., Result]) -> None:
    bad = cli("jobs", "submit", "document_delete", "-p", '{"document_id": "a b", "force": 1}')
    assert bad.exit_code == 2, bad.output
    assert bad.stderr.startswith("error: invalid payload: document_id: String should match")
    assert "force: unknown field (check the spelling)" in bad.stderr
    unknown = cli("jobs", "submit", "resize", "-p", "{}")
    assert unknown.exit_code == 2 and "unknown job type 'resize'" in unknown.stderr
    no_worker = cli("worker", "--type", "resize")
    assert no_worker.exit_code == 2 and "unknown job type 'resize'" in no_worker.stderr
    broken = cli("jobs", "submit", "collection_delete", "-p", "{nope")
    assert broken.exit_code == 2 and "--payload is not valid JSON" in broken.stderr
    overlap = cli("collections", "reindex", "library", "--chunk-size", "64",
                  "--chunk-overlap", "64")
    assert overlap.exit_code == 2 and "chunk_overlap (64) must be smaller" in overlap.stderr
    assert sum(stats(cli)["by_status"].values()) == 0


def test_collections_reindex_queues_a_vector_reindex_on_its_queue(
        cli_env: dict[str, str], cli: Callable[..., Result]) -> None:
    queued = cli("collections", "reindex", "library", "--strategy", "sentence",
                 "--chunk-size", "64", "--json")
    assert queued.exit_code == 0, queued.output
    reply = json.loads(queued.stdout)
    assert reply["queue"] == f"{cli_env['DOCWORKERS_QUEUE']}.vector_reindex"
    job = json.loads(cli("jobs", "show", reply["job_id"], "--json").stdout)
    assert job["type"] == "vector_reindex" and job["status"] == "queued"
    assert job["payload"]["chunking_strategy"] == "sentence"
    assert job["payload"]["chunk_size"] == 64 and job["payload"]["extract_metadata"] is None
    listed = json.loads(cli("jobs", "list", "--type", "vector_reindex", "--json").stdout)
    assert [j["id"] for j in listed] == [reply["job_id"]]


def test_the_default_chunk_size_is_the_configured_embedders_window(
        cli_env: dict[str, str], cli: Callable[..., Result],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def queued_chunk_size() -> int:
        queued = cli("collections", "reindex", "library", "--json")
        assert queued.exit_code == 0, queued.output
        job = json.loads(cli("jobs", "show", json.loads(queued.stdout)["job_id"],
                             "--json").stdout)
        return int(job["payload"]["chunk_size"])

    assert queued_chunk_size() == 254  # onnx-minilm: 256 tokens minus [CLS] and [SEP]
    # The openai embedder states its own window; no server is asked for it.
    monkeypatch.setenv("DOCWORKERS_EMBEDDER", "openai")
    monkeypatch.setenv("DOCWORKERS_EMBEDDING_URL", "http://127.0.0.1:9")
    assert queued_chunk_size() == 512


def test_on_the_local_stack_a_waited_job_runs_here(local_stack_env: Path,
                                                  cli: Callable[..., Result],
                                                  embedder: Any) -> None:
    # Chunks written before the stack's Chroma server first opens its folder.
    seed(str(local_stack_env / ".docworkers" / "chroma"), embedder, "library")
    dropped = cli("jobs", "submit", "collection_delete", "-p", '{"collection": "library"}',
                  "--wait", "--json")
    assert dropped.exit_code == 0, dropped.output
    job = json.loads(dropped.stdout)
    assert job["status"] == "completed" and job["result"]["dropped"] == ["library"]
    assert json.loads(cli("collections", "list", "--json").stdout) == []
    queued = cli("jobs", "submit", "vector_reindex", "-p", '{"collection": "library"}',
                 "--json")
    assert queued.exit_code == 0 and json.loads(queued.stdout)["status"] == "queued"
    listed = json.loads(cli("jobs", "list", "--json").stdout)
    assert {(j["type"], j["status"]) for j in listed} == {
        ("collection_delete", "completed"), ("vector_reindex", "queued")}


def test_deleting_from_a_reindexed_collection_reaches_its_physical_version(
        cli_env: dict[str, str], cli: Callable[..., Result], clean_redis: redis.Redis,
        embedder: Any) -> None:
    chroma = cli_env["DOCWORKERS_CHROMA_PATH"]
    first, second = seed(chroma, embedder, "library--v1", cli_env["DOCWORKERS_REDIS_URL"])
    clean_redis.set("dw:{documents}:alias:library", "library--v1")  # as vector_reindex leaves it
    listed = json.loads(cli("collections", "list", "--json").stdout)
    assert listed == [{"name": "library", "chunks": 4, "documents": 2}]
    deleted = cli("documents", "delete", first, "--yes")
    assert deleted.exit_code == 0 and "2 chunks removed" in deleted.stdout, deleted.output
    assert chunks(chroma, "library--v1", first) == 0
    dropped = cli("collections", "delete", "library", "--yes")
    assert dropped.exit_code == 0 and "1 document record(s)" in dropped.stdout, dropped.output
    assert json.loads(cli("collections", "list", "--json").stdout) == []
    assert clean_redis.get("dw:{documents}:alias:library") is None
    assert chunks(chroma, "library--v1", second) == 0


def test_import_runs_a_bulk_import_and_its_uploads_here(local_stack_env: Path,
                                                        cli: Callable[..., Result]) -> None:
    folder = local_stack_env / "notes"
    folder.mkdir()
    (folder / "bread.md").write_text(TEXTS[0] + "\n\n" + TEXTS[1] + "\n")
    (folder / "tool.go").write_text("package main\n")
    imported = cli("import", "notes", "--collection", "kitchen", "--json")
    assert imported.exit_code == 0, imported.output
    job = json.loads(imported.stdout)
    assert job["type"] == "bulk_import" and job["status"] == "completed"
    assert job["result"]["succeeded"] == 1 and job["result"]["skipped"] == 1
    found = cli("search", "how long should the dough rise", "--collection", "kitchen", "--json")
    assert json.loads(found.stdout)[0]["filename"] == "bread.md"
    missing = cli("import", "nowhere")
    assert missing.exit_code == 2 and "no such file or folder: nowhere" in missing.stderr
