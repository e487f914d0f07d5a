"""POST /api/documents/upload: stored safely, checked from the bytes, validated, queued."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from api_support import ApiClient, running_api, upload_files

from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.settings import Settings

TEXT = b"# Turbines\n\nWind turbines convert the kinetic energy of wind into electricity.\n"


def stored_files(settings: Settings) -> list[Path]:
    directory = Path(settings.storage_dir)
    return sorted(directory.iterdir()) if directory.is_dir() else []


async def test_upload_is_accepted_stored_by_content_and_queued(
        api: ApiClient, settings: Settings) -> None:
    response = await api.post(
        "/api/documents/upload", files=upload_files("notes.md", TEXT, "text/markdown"),
        data={"collection": "wind-docs", "chunk_size": "120", "chunk_overlap": "10",
              "extract_metadata": "true", "num_questions": "1", "max_pages": "3",
              "ocr": "always", "chunking_strategy": "sentence", "priority": "7", "tags": "a, b",
              "user_id": "u1"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["created_at"] and body["kind"] == "markdown"
    assert body["filename"] == "notes.md" and body["file_size"] == len(TEXT)
    assert response.headers["location"] == f"/api/jobs/{body['job_id']}"
    stored = Path(settings.storage_dir) / f"{hashlib.sha256(TEXT).hexdigest()}.md"
    assert stored_files(settings) == [stored] and stored.read_bytes() == TEXT

    job = await api.runtime.jobs.get_job(body["job_id"])
    assert job.type == UPLOAD_JOB_TYPE and job.priority == 7
    assert job.tags == ["a", "b"] and job.user_id == "u1"
    assert job.payload == {
        "filename": "notes.md", "file_path": str(stored.resolve()), "file_size": len(TEXT),
        "collection": "wind-docs", "chunking_strategy": "sentence", "chunk_size": 120,
        "chunk_overlap": 10, "extract_metadata": True, "num_questions": 1, "max_pages": 3,
        "ocr": "always"}
    shown = (await api.get(f"/api/jobs/{body['job_id']}")).json()
    assert "file_path" not in shown["payload"]  # the server's storage layout stays private


async def test_same_bytes_twice_share_one_stored_file(api: ApiClient,
                                                      settings: Settings) -> None:
    for name in ("a.txt", "b.txt"):
        response = await api.post("/api/documents/upload", files=upload_files(name, TEXT))
        assert response.status_code == 202
    assert len(stored_files(settings)) == 1


@pytest.mark.parametrize("name", ["../../etc/passwd.txt", "..\\..\\windows\\passwd.txt",
                                  "/etc/passwd.txt", "sub/../../passwd.txt"])
async def test_traversal_filenames_are_stored_safely(api: ApiClient, settings: Settings,
                                                     tmp_path: Path, name: str) -> None:
    response = await api.post("/api/documents/upload", files=upload_files(name, TEXT))
    assert response.status_code == 202, response.text
    assert response.json()["filename"] == "passwd.txt"
    [stored] = stored_files(settings)
    assert stored.parent == Path(settings.storage_dir) and stored.name.endswith(".txt")
    assert "passwd" not in stored.name
    assert not (tmp_path / "etc").exists() and not (tmp_path / "passwd.txt").exists()


async def test_a_bare_traversal_name_without_an_extension_is_refused(
        api: ApiClient, settings: Settings) -> None:
    response = await api.post("/api/documents/upload",
                              files=upload_files("../../etc/passwd", b"root:x:0:0:root\n"))
    assert response.status_code == 415
    assert "passwd" in response.json()["error"]["message"]
    assert stored_files(settings) == []


async def test_oversized_upload_is_stopped_while_streaming(settings: Settings,
                                                           embedder: Any) -> None:
    async with running_api(replace(settings, max_upload_bytes=70_000), embedder) as client:
        big = b"word " * 40_000  # 200 kB, under the Content-Length pre-check's allowance
        response = await client.post("/api/documents/upload", files=upload_files("big.txt", big))
        assert response.status_code == 413
        error = response.json()["error"]
        assert error["code"] == "too_large" and "68.4 KiB" in error["message"]
        assert error["fields"]["file"]
        assert stored_files(settings) == []  # the partial file was removed
        ok = await client.post("/api/documents/upload",
                               files=upload_files("ok.txt", b"word " * 1000))
        assert ok.status_code == 202


async def test_content_length_over_the_limit_is_refused_unread(settings: Settings,
                                                               embedder: Any) -> None:
    async with running_api(replace(settings, max_upload_bytes=1000), embedder) as client:
        pulled = 0

        async def body() -> Any:
            nonlocal pulled
            for _ in range(40):
                pulled += 1
                yield b"x" * 65536

        response = await client.post(
            "/api/documents/upload", content=body(),
            headers={"content-type": "multipart/form-data; boundary=abc",
                     "content-length": str(40 * 65536)})
        assert response.status_code == 413
        assert pulled <= 1  # refused on the header, not after streaming 2.5 MB
        assert stored_files(settings) == []


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "unsupported_type"),
        ("report.pdf", bytes(range(256)) * 4, "corrupt"),
        ("archive.zip", b"PK\x03\x04" + b"\x00" * 200, "unsupported_type"),
        ("main.go", b"package main\n\nfunc main() {}\n", "unsupported_type"),
        ("slides.ppt", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
         "unsupported_type"),
    ],
)
async def test_content_type_comes_from_the_bytes(api: ApiClient, settings: Settings,
                                                 name: str, content: bytes, code: str) -> None:
    response = await api.post("/api/documents/upload",
                              files=upload_files(name, content, "application/pdf"))
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == code and name in error["message"] and error["fields"]["file"]
    assert stored_files(settings) == []


async def test_pdf_bytes_under_a_wrong_name_are_accepted_as_pdf(api: ApiClient,
                                                                corpus: Path) -> None:
    content = (corpus / "pdf/DA-1p.pdf").read_bytes()
    response = await api.post("/api/documents/upload", files=upload_files("scan.txt", content))
    assert response.status_code == 202 and response.json()["kind"] == "pdf"


@pytest.mark.parametrize(
    ("relative", "kind"),
    [("docx/simple.doc", "doc"), ("formats/tests-example.xls", "xls"),
     ("formats/stanley-cups.xlsx", "xlsx"), ("formats/stanley-cups.csv", "csv"),
     ("formats/favorite-things.pptx", "pptx"), ("formats/fake-email-attachment.eml", "eml"),
     ("formats/fake-email.msg", "msg")],
)
async def test_legacy_office_sheets_slides_and_email_are_accepted(
        api: ApiClient, settings: Settings, corpus: Path, relative: str, kind: str) -> None:
    content = (corpus / relative).read_bytes()
    response = await api.post("/api/documents/upload",
                              files=upload_files(Path(relative).name, content))
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == kind
    digest = hashlib.sha256(content).hexdigest()
    assert stored_files(settings) == [Path(settings.storage_dir) / f"{digest}.{kind}"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"chunk_size": "100", "chunk_overlap": "100"}, "chunk_overlap"),
        ({"chunk_size": "-5"}, "chunk_size"),
        ({"chunk_size": "100000"}, "chunk_size"),
        ({"chunk_size": "many"}, "chunk_size"),
        ({"collection": "x"}, "collection"),
        ({"collection": "bad name!"}, "collection"),
        ({"chunking_strategy": "magic"}, "chunking_strategy"),
        ({"num_questions": "11"}, "num_questions"),
        ({"extract_metadata": "perhaps"}, "extract_metadata"),
        ({"colection": "typo"}, "colection"),
        ({"priority": "high"}, "priority"),
        ({"priority": "5000"}, "priority"),
        ({"file_path": "/etc/shadow"}, "file_path"),
        ({"filename": "other.txt"}, "filename"),
    ],
)
async def test_invalid_options_are_422_naming_the_field(
        api: ApiClient, settings: Settings, clean_redis: redis.Redis,
        data: dict[str, str], field: str) -> None:
    response = await api.post("/api/documents/upload", files=upload_files("a.txt", TEXT),
                              data=data)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_payload" and field in error["fields"]
    assert field in error["message"] and "Traceback" not in response.text
    assert stored_files(settings) == []
    assert not clean_redis.keys("dw:{api}:job:*")  # nothing was queued


async def test_missing_or_empty_file_is_422(api: ApiClient) -> None:
    no_file = await api.post("/api/documents/upload", data={"collection": "docs"},
                             files={"other": (None, b"x")})
    assert no_file.status_code == 422 and no_file.json()["error"]["fields"]["file"]
    unchosen = await api.post("/api/documents/upload", files=upload_files("", b""))
    assert unchosen.status_code == 422 and "no file" in unchosen.json()["error"]["message"]
    empty = await api.post("/api/documents/upload", files=upload_files("empty.txt", b""))
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_file"


async def test_malformed_requests_are_4xx(api: ApiClient) -> None:
    not_multipart = await api.post("/api/documents/upload", json={"file": "x"})
    assert not_multipart.status_code == 415
    assert not_multipart.json()["error"]["code"] == "expected_multipart"
    two_files = await api.post("/api/documents/upload", files=[
        ("file", ("a.txt", TEXT, "text/plain")), ("file", ("b.txt", TEXT, "text/plain"))])
    assert two_files.status_code == 422 and "exactly one" in two_files.json()["error"]["message"]
    broken = await api.post("/api/documents/upload", content=b"--abc\r\nnonsense",
                            headers={"content-type": "multipart/form-data; boundary=abc"})
    assert broken.status_code in (400, 422)
    assert set(broken.json()["error"]) >= {"code", "message"}
