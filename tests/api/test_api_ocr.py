"""Scans through the API with in-process workers (the real model and Tesseract): the ``ocr``
form field, search hits that say their text came from OCR, and the ``ocr_languages`` setting
reaching the workers' parser."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from api_support import ApiClient, running_api, upload_files, wait_for_job

from docworkers.settings import Settings

SCAN = "pdf/scanned-fake-memo.pdf"
MODES = "Input should be 'auto', 'always' or 'never'"


async def test_a_scanned_upload_is_found_and_its_hits_say_ocr(
        settings: Settings, embedder: Any, corpus: Path) -> None:
    content = (corpus / SCAN).read_bytes()
    async with running_api(settings, embedder, with_workers=1) as api:
        config = (await api.get("/api/config")).json()
        assert config["ocr_modes"] == ["auto", "always", "never"]
        assert config["default_ocr"] == "auto"
        upload = await api.post("/api/documents/upload", files=upload_files("memo.pdf", content),
                                data={"collection": "scans"})
        assert upload.status_code == 202, upload.text
        job = await wait_for_job(api, upload.json()["job_id"], timeout=120)
        assert job["status"] == "completed", job["error"]
        found = await api.post("/api/search", json={
            "collection": "scans", "query": "how many blankets were delivered", "k": 1})
        [hit] = found.json()["hits"]
        assert "10,000 blankets" in hit["text"] and hit["page_start"] == 1
        assert hit["ocr"] is True and 50 < hit["ocr_confidence"] <= 100
        document = (await api.get(f"/api/documents/{hit['document_id']}")).json()
        assert document["metadata"]["ocr_pages"] == [1]
        chunks = (await api.get(f"/api/documents/{hit['document_id']}/chunks")).json()
        assert [(c["page_start"], c["ocr"], c["ocr_confidence"]) for c in chunks["chunks"]] \
            == [(1, True, hit["ocr_confidence"])]

        never = await api.post("/api/documents/upload", files=upload_files("again.pdf", content),
                               data={"collection": "other", "ocr": "never"})
        failed = await wait_for_job(api, never.json()["job_id"], timeout=120)
        assert failed["status"] == "failed" and failed["error"]["code"] == "no_text"


async def test_an_unknown_ocr_mode_is_a_422_naming_the_field(api: ApiClient,
                                                             corpus: Path) -> None:
    response = await api.post("/api/documents/upload",
                              files=upload_files("memo.pdf", (corpus / SCAN).read_bytes()),
                              data={"ocr": "sometimes"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"ocr": MODES}


async def test_the_ocr_languages_setting_reaches_the_workers_parser(
        settings: Settings, embedder: Any, corpus: Path) -> None:
    missing = dataclasses.replace(settings, ocr_languages="eng+zzz")
    async with running_api(missing, embedder, with_workers=1) as api:
        upload = await api.post("/api/documents/upload",
                                files=upload_files("memo.pdf", (corpus / SCAN).read_bytes()))
        job = await wait_for_job(api, upload.json()["job_id"], timeout=120)
    assert job["status"] == "failed" and job["error"]["code"] == "ocr_unavailable"
    assert "'zzz'" in job["error"]["message"] and "ocr_languages" in job["error"]["message"]
