"""Every time in the API's JSON is ISO 8601 UTC, as jobs' are (issue 13): documents (stored as
epoch seconds in Redis) and workers' published stats."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from api_support import running_api

from docworkers.ingest.document_repository import DocumentRecord, DocumentStatus
from docworkers.settings import Settings


def utc(value: Any) -> datetime:
    """The parsed time; it must be ISO 8601 with a zero UTC offset."""
    assert isinstance(value, str), value
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() == timedelta(0), value
    return moment


async def test_documents_and_workers_show_iso_times(settings: Settings, embedder: Any) -> None:
    async with running_api(settings, embedder, with_workers=1) as api:
        record = await api.runtime.documents.register(DocumentRecord(
            document_id="d" * 32, collection="notes", filename="a.md",
            status=DocumentStatus.COMPLETED))
        listed = (await api.get("/api/documents")).json()["documents"]
        shown = (await api.get(f"/api/documents/{'d' * 32}")).json()
        workers = (await api.get("/api/workers")).json()["workers"]
        workers += (await api.get("/api/jobs/stats")).json()["workers"]
    assert [d["document_id"] for d in listed] == ["d" * 32] and listed[0] == shown
    # The stored epoch seconds, to the microsecond ISO 8601 keeps.
    assert utc(shown["created_at"]).timestamp() == pytest.approx(record.created_at, abs=1e-6)
    assert utc(shown["updated_at"]).timestamp() == pytest.approx(record.updated_at, abs=1e-6)
    assert workers
    for published in workers:
        assert utc(published["started_at"]) <= utc(published["updated_at"])
        assert published["last_job_time"] is None  # no job yet: null, not 0 or 1970
