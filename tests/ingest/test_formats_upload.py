"""Legacy Word, sheets, slides and Outlook mail end to end: uploaded, parsed in the isolated
child, chunked, embedded with the real model, stored in real Chroma and found by search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from job_waits import until_finished
from upload_support import make_worker, payload

from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.search import SearchService
from docworkers.queue import JobStatus, RedisJobRepository

FILES = ["docx/fake-doc-emphasized-text.doc", "formats/stanley-cups.xlsx",
         "formats/tests-example.xls", "formats/favorite-things.pptx", "formats/fake-email.msg"]


async def test_each_new_format_is_ingested_and_found_by_search(
        ingest_env: dict[str, Any], corpus: Path, tmp_path: Path) -> None:
    jobs: RedisJobRepository = ingest_env["jobs"]
    ids = [await jobs.enqueue(UPLOAD_JOB_TYPE, payload(corpus, relative, tmp_path))
           for relative in FILES]
    async with make_worker(ingest_env, concurrency=2):
        finished = [await until_finished(jobs, job_id) for job_id in ids]
    assert [job.status for job in finished] == [JobStatus.COMPLETED] * len(FILES), \
        [job.error for job in finished]
    # hybrid search, as the API's: a table chunk's embedding says little, its words a lot
    search = SearchService(ingest_env["embedder"], ingest_env["vectors"],
                           ingest_env["documents"])

    async def top(query: str) -> Any:
        return (await search.search("risk-docs", query, k=1))[0]

    cups = await top("How many Stanley Cups have the Maple Leafs from Toronto won?")
    assert cups.filename == "stanley-cups.xlsx" and cups.page_start in (1, 2)
    lines = cups.text.splitlines()
    assert "| Team | Location | Stanley Cups |" in lines  # the cell comes with its columns
    assert any(line.startswith("| Maple Leafs | TOR | ") for line in lines)
    quiz = await top("are bagpipes awesome?")
    assert quiz.filename == "tests-example.xls" and quiz.page_start == 1
    assert any(line.startswith("| TF | Bagpipes are awesome. | true |")
               for line in quiz.text.splitlines())
    word = await top("a bold italic bold-italic text")
    assert word.filename == "fake-doc-emphasized-text.doc"
    slides = await top("my favorite things: parrots and hockey")
    assert slides.filename == "favorite-things.pptx" and slides.page_start == 1
    mail = await top("roses are red, violets are blue")
    assert mail.filename == "fake-email.msg" and "This is a test email" in mail.text
