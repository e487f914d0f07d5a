"""The dashboard's documents view in Chromium, on a real server process (one in-process upload
worker, real Chroma, the real model): documents with their chunk and page counts, a
collection's counts, a delete that searches feel, a reindex that links to its job, a layout
that holds a 255-character filename at 390 px, and nothing shown before signing in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from api_support import TERMINAL
from served import AUTH, CHROMIUM, NO_CHROMIUM, Server, dashboard, screenshot, serving

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

MEMO = "pdf/fake-memo.pdf"  # one page
BOOK = "text/book-war-and-peace-1p.txt"  # no pages (plain text)
LOCKED = "pdf/password.pdf"  # fails: encrypted
BOOK_PHRASE = "Genoa and Lucca are family estates of the Buonapartes"
LONG_NAME = "quarterly-" + "x" * 241 + ".txt"  # 255 characters, the most a name may have


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(redis_url, tmp_path_factory.mktemp("server")) as running:
        yield running


def ingest(server: Server, name: str, content: bytes, collection: str) -> dict[str, Any]:
    """Upload through the API and wait for the upload job to finish; its final state."""
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        upload = http.post("/api/documents/upload", data={"collection": collection},
                           files={"file": (name, content, "application/octet-stream")})
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["job_id"]
        with http.stream("GET", f"/api/jobs/{job_id}/events", timeout=60) as stream:
            for _ in stream.iter_lines():
                pass
        job: dict[str, Any] = http.get(f"/api/jobs/{job_id}").json()
    assert job["status"] in TERMINAL
    return job


def search_ids(server: Server, collection: str, query: str) -> set[str]:
    hits = httpx.post(f"{server.url}/api/search", headers=AUTH, timeout=30, json={
        "collection": collection, "query": query, "k": 20}).json()["hits"]
    return {hit["document_id"] for hit in hits}


def one_line(locator: Locator) -> None:
    """The element is laid out on one line: its box is less than two lines of its font tall
    (a pill or button that wraps letter by letter is many lines tall)."""
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not laid out"
    font = locator.evaluate("node => parseFloat(getComputedStyle(node).fontSize)")
    assert box["height"] < 2.5 * font, (locator, box, font)


def fits(page: Page) -> None:
    """Nothing sticks out sideways: the page does not scroll horizontally."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert page.viewport_size is not None and width <= page.viewport_size["width"], width


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_documents_and_collections_in_browser(server: Server, corpus: Path) -> None:
    from playwright.sync_api import expect

    memo = ingest(server, "fake-memo.pdf", (corpus / MEMO).read_bytes(), "memos")
    book = ingest(server, "war-and-peace.txt", (corpus / BOOK).read_bytes(), "memos")
    locked = ingest(server, "locked.pdf", (corpus / LOCKED).read_bytes(), "memos")
    assert memo["status"] == book["status"] == "completed" and locked["status"] == "failed"
    memo_chunks, book_chunks = memo["result"]["chunk_count"], book["result"]["chunk_count"]
    book_id = book["result"]["document_id"]
    assert book_id in search_ids(server, "memos", BOOK_PHRASE)

    with dashboard(server, width=1280, height=900) as page:
        page.click(".tabs a[data-view=documents]")
        expect(page.locator("main.view:visible")).to_have_attribute("id", "view-documents")
        rows = page.locator("#documents-rows tr")
        memo_row = rows.filter(has_text="fake-memo.pdf")
        book_row = rows.filter(has_text="war-and-peace.txt")
        expect(memo_row.locator(".badge")).to_have_text("completed")
        expect(memo_row.locator("td.count").nth(0)).to_have_text(str(memo_chunks))
        expect(memo_row.locator("td.count").nth(1)).to_have_text("1")  # pages
        expect(book_row.locator("td.count").nth(0)).to_have_text(str(book_chunks))
        expect(book_row.locator("td.count").nth(1)).to_have_text("\N{EN DASH}")  # no pages
        collection = page.locator("#collections-rows tr[data-collection=memos]")
        expect(collection.locator("td.count")).to_have_text(
            ["3", str(memo_chunks + book_chunks)])
        failed_row = rows.filter(has_text="locked.pdf")  # its error under its name
        expect(failed_row.locator(".badge")).to_have_text("failed")
        expect(failed_row.locator(".detail")).to_contain_text("protected by a password")
        screenshot(page, "documents")

        # The status filter, then one document with its chunks and their pages.
        page.select_option("#documents-status", "failed")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("locked.pdf")
        page.select_option("#documents-status", "cancelled")
        expect(page.locator("#no-documents")).to_have_text("No documents match these filters.")
        page.select_option("#documents-status", "")
        memo_row.get_by_role("link", name="fake-memo.pdf").click()
        expect(page).to_have_url(re.compile(f"#/documents/{memo['result']['document_id']}$"))
        expect(page.locator("#document-title")).to_have_text("fake-memo.pdf")
        expect(page.locator("#document-facts")).to_contain_text("completed")
        expect(page.locator("#document-chunks li")).to_have_count(memo_chunks)
        expect(page.locator("#document-chunks li").first).to_contain_text("page 1")
        expect(page.locator("#document-facts a[href^='#/jobs/']")).to_have_attribute(
            "href", f"#/jobs/{memo['id']}")
        page.get_by_role("link", name="← Documents").click()

        # Delete one document: asked first, then gone from the list, the counts and search.
        book_row.get_by_role("button", name="Delete war-and-peace.txt").click()
        question = page.locator("#documents-confirm")
        expect(question.locator("strong")).to_have_text("war-and-peace.txt")
        expect(question).to_contain_text(f"Delete this document and its {book_chunks} chunks?")
        page.get_by_role("button", name="Delete document").click()
        expect(page.locator("#documents-outcome")).to_have_text(
            f"Deleted war-and-peace.txt: {book_chunks} chunks removed.")
        expect(book_row).to_have_count(0)
        expect(collection.locator("td.count")).to_have_text(["2", str(memo_chunks)])
        assert book_id not in search_ids(server, "memos", BOOK_PHRASE)

        # A reindex queues a job and links to it (this server runs only upload workers).
        collection.get_by_role("button", name="Reindex memos").click()
        page.fill("#reindex-size", "128")
        page.get_by_role("button", name="Start reindex").click()
        outcome = page.locator("#documents-outcome")
        expect(outcome).to_contain_text("Reindex of memos queued")
        link = outcome.locator("a[href^='#/jobs/']")
        job_id = (link.get_attribute("href") or "").removeprefix("#/jobs/")
        job = httpx.get(f"{server.url}/api/jobs/{job_id}", headers=AUTH).json()
        assert job["type"] == "vector_reindex"
        assert job["payload"]["collection"] == "memos" and job["payload"]["chunk_size"] == 128
        expect(outcome.locator(".badge")).to_have_text("queued")
        assert httpx.delete(f"{server.url}/api/jobs/{job_id}", headers=AUTH).status_code == 200


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_a_255_character_name_at_390_and_1280_px(server: Server, corpus: Path) -> None:
    from playwright.sync_api import expect

    assert len(LONG_NAME) == 255
    job = ingest(server, LONG_NAME, (corpus / BOOK).read_bytes(), "long-names")
    document_id = job["result"]["document_id"]
    for width in (390, 1280):
        with dashboard(server, width=width, height=800) as page:
            page.goto(f"{server.url}/#/collections/long-names")  # = #/documents/collection/..
            expect(page).to_have_url(f"{server.url}/#/documents/collection/long-names")
            expect(page.locator("#documents-collection")).to_have_value("long-names")
            row = page.locator(f"#documents-rows tr[data-document-id='{document_id}']")
            name = row.get_by_role("link", name=LONG_NAME)
            expect(name).to_have_attribute("title", LONG_NAME)  # the whole name as a tooltip
            one_line(name)
            one_line(row.locator(".badge"))
            one_line(row.get_by_role("button", name=f"Delete {LONG_NAME}"))
            collection = page.locator("#collections-rows tr[data-collection=long-names]")
            one_line(collection.get_by_role("button", name="Reindex long-names"))
            one_line(collection.get_by_role("button", name="Delete collection long-names"))
            box = name.bounding_box()
            assert box is not None and box["width"] < width  # cut, not the name's full length
            fits(page)
            if width == 390:
                screenshot(page, "documents-narrow")

            name.click()
            expect(page.locator("#document-title")).to_have_attribute("title", LONG_NAME)
            one_line(page.locator("#document-title"))
            one_line(page.locator("#document-facts .badge"))
            delete = page.get_by_role("button", name=f"Delete {LONG_NAME}")
            one_line(delete)
            delete.click()
            question = page.locator("#documents-confirm strong")
            expect(question).to_have_attribute("title", LONG_NAME)
            one_line(question)
            fits(page)
            page.get_by_role("button", name="Keep").click()
            expect(page.locator("#documents-confirm")).to_be_hidden()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_nothing_shows_before_signing_in(server: Server, corpus: Path) -> None:
    from playwright.sync_api import expect

    ingest(server, "private-memo.pdf", (corpus / MEMO).read_bytes(), "private")
    empty = re.compile(r"No jobs yet|No live workers|empty|No documents|No collections", re.I)
    with dashboard(server, login=False) as page:
        expect(page.locator("#token-dialog")).to_be_visible()
        for view in ("overview", "jobs", "queues", "history", "documents"):
            page.goto(f"{server.url}/#/{view}")
            page.reload()  # the view's own start, not a hash change on a page already asking
            expect(page.locator("#token-dialog")).to_be_visible()
            expect(page.locator("#signin")).to_be_visible()
            expect(page.locator("main.view:visible")).to_have_count(0)
            texts = page.get_by_text(empty)
            for index in range(texts.count()):
                expect(texts.nth(index)).to_be_hidden()
            expect(page.get_by_text("private-memo.pdf")).to_have_count(0)
            expect(page.locator(".badge:visible")).to_have_count(0)

    # Signed in, the document shows; once the token is forgotten, nothing of it does.
    with dashboard(server) as page:
        page.goto(f"{server.url}/#/documents/collection/private")
        expect(page.get_by_role("link", name="private-memo.pdf")).to_be_visible()
        page.click("#token-button")
        page.click("#token-form button[value=clear]")
        expect(page.locator("#token-dialog")).to_be_visible()
        expect(page.locator("#signin")).to_be_visible()
        expect(page.get_by_text("private-memo.pdf").locator("visible=true")).to_have_count(0)
        expect(page.locator("main.view:visible")).to_have_count(0)


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_paging_through_documents(server: Server) -> None:
    from playwright.sync_api import expect

    for number in range(26):  # one more than a page
        note = f"# Note {number}\n\nField note number {number} about migrating swallows.\n"
        assert ingest(server, f"note-{number:02d}.md", note.encode(), "notes")["status"] == \
            "completed"
    with dashboard(server, width=1280, height=900) as page:
        page.goto(f"{server.url}/#/documents/collection/notes")
        rows = page.locator("#documents-rows tr")
        pager = page.locator("#documents-pager")
        expect(pager.locator(".range")).to_have_text("1\N{EN DASH}25 of 26")
        expect(rows).to_have_count(25)
        expect(rows.first).to_contain_text("note-25.md")  # newest first
        expect(pager.get_by_role("button", name="Previous")).to_be_disabled()
        pager.get_by_role("button", name="Next").click()
        expect(pager.locator(".range")).to_have_text("26\N{EN DASH}26 of 26")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("note-00.md")
        expect(pager.get_by_role("button", name="Next")).to_be_disabled()

        # Deleting the last page's only document shows the page before, and no pager.
        rows.first.get_by_role("button", name="Delete note-00.md").click()
        page.get_by_role("button", name="Delete document").click()
        expect(page.locator("#documents-outcome")).to_contain_text("Deleted note-00.md")
        expect(rows).to_have_count(25)
        expect(rows.first).to_contain_text("note-25.md")
        expect(pager).to_be_hidden()
