"""The jobs view in Chromium, against a real server process: 200 jobs on two queues, filtered
and paged; a failed job's page with its traceback, attempts and timeline; retrying it."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import CHROMIUM, NO_CHROMIUM, QUEUE, Server, dashboard, screenshot, serving

from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository, RepositoryConfig

UPLOADS = 195
DELETES = 4
LONG_NAME = "q" * 240 + ".pdf"  # a long name must not squeeze the table
DASH = "\u2013"  # the en dash of "Showing 1\u201350"


def upload_payload(i: int) -> dict[str, str]:
    name = LONG_NAME if i == 7 else f"report-{i:03}.pdf"
    return {"filename": name, "collection": "finance" if i % 4 == 0 else "docs"}


def broken_traceback() -> str:
    try:
        raise ValueError("cannot read page 3 of broken-scan.pdf")
    except ValueError:
        return traceback.format_exc()


async def populate(redis_url: str) -> str:
    """200 jobs as producers and a worker left them; returns the id of the one that failed."""
    base = RedisJobRepository.from_url(redis_url, RepositoryConfig(queue=QUEUE))
    deletes = RedisJobRepository.from_url(redis_url,
                                          RepositoryConfig(queue=f"{QUEUE}.document_delete"))
    try:
        broken = await base.enqueue("document_upload", {"filename": "broken-scan.pdf",
                                                        "collection": "scans"},
                                    priority=5, max_retries=1, user_id="eve")
        error = JobErrorInfo("parse_error", "cannot read page 3 of broken-scan.pdf",
                             broken_traceback(), "parse")
        for failure in (Failure.retry(error), Failure.final(error)):
            [job] = (await base.reserve("e2e-worker:host:1", 1, lease=60)).jobs
            assert job.id == broken
            await base.update_progress(broken, job.token, 20, "parsing page 3", lease=60)
            await base.fail(broken, job.token, failure)
        for i in range(UPLOADS):
            await base.enqueue("document_upload", upload_payload(i),
                               user_id="ann" if i % 10 == 0 else "bob",
                               tags=["urgent"] if i % 20 == 0 else [])
            await asyncio.sleep(0.002)  # distinct creation times: a stable newest-first order
        for i in range(DELETES):
            await deletes.enqueue("document_delete", {"document_id": f"doc-{i}",
                                                      "collection": "finance"})
            await asyncio.sleep(0.002)
        return broken
    finally:
        await base.close()
        await deletes.close()


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(redis_url, tmp_path_factory.mktemp("jobs-server"), workers=0) as running:
        yield running


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_jobs_view_filters_pages_and_retries_a_failed_job(server: Server, redis_url: str,
                                                          tmp_path: Path) -> None:
    from playwright.sync_api import expect

    broken = asyncio.run(populate(redis_url))
    total = UPLOADS + DELETES + 1
    finance = sum(1 for i in range(UPLOADS) if i % 4 == 0) + DELETES
    with dashboard(server, width=1200, height=900) as page:
        page.click(".tabs a[data-view=jobs]")
        rows = page.locator("#jobs-rows tr")
        expect(page.locator("#jobs-range")).to_have_text(f"Showing 1{DASH}50 of {total} jobs")
        expect(rows).to_have_count(50)
        expect(page.locator("#jobs-prev")).to_be_disabled()
        # the newest first: the document_delete jobs, then the uploads from the last one back
        expect(rows.first).to_contain_text("document_delete")
        expect(rows.first.locator("a")).to_have_text(f"doc-{DELETES - 1}")
        expect(rows.nth(DELETES)).to_contain_text(f"report-{UPLOADS - 1:03}.pdf")

        for start in (51, 101, 151):
            page.click("#jobs-next")
            end = min(start + 49, total)
            expect(page.locator("#jobs-range")).to_have_text(
                f"Showing {start}{DASH}{end} of {total} jobs")
        expect(rows).to_have_count(total - 150)
        expect(page.locator("#jobs-next")).to_be_disabled()
        expect(rows.last).to_contain_text("broken-scan.pdf")  # the oldest
        long_row = page.locator("#jobs-rows tr", has_text="q" * 40)  # the 8th oldest
        expect(long_row).to_have_count(1)
        # A 244-character name is cut with an ellipsis, and the page does not scroll sideways.
        assert long_row.locator("a.truncate").get_attribute("title").startswith(LONG_NAME)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.click("#jobs-prev")
        expect(page.locator("#jobs-range")).to_have_text(f"Showing 101{DASH}150 of {total} jobs")

        def apply(**values: str) -> None:
            page.click("#jf-clear")
            for name, value in values.items():
                if name in ("status", "type", "queue"):
                    page.select_option(f"#jf-{name}", value)
                else:
                    page.fill(f"#jf-{name}", value)
            page.click("#jf-apply")

        apply(collection="finance")
        expect(page.locator("#jobs-range")).to_have_text(
            f"Showing 1{DASH}{min(finance, 50)} of {finance} jobs")
        apply(type="document_delete")
        expect(page.locator("#jobs-range")).to_have_text(
            f"Showing 1{DASH}{DELETES} of {DELETES} jobs")
        apply(queue=f"{QUEUE}.document_delete", collection="finance")
        expect(rows).to_have_count(DELETES)
        apply(text="REPORT-01")  # report-010 .. report-019
        expect(page.locator("#jobs-range")).to_have_text(f"Showing 1{DASH}10 of 10 jobs")
        screenshot(page, "jobs")
        apply(tag="urgent", user="ann")  # i % 20 == 0
        expect(rows).to_have_count(len(range(0, UPLOADS, 20)))
        apply(text="no such file")
        expect(page.locator("#jobs-none")).to_be_visible()
        expect(page.locator("#jobs-range")).to_have_text("No jobs")
        apply(status="failed")
        expect(page.locator("#jobs-range")).to_have_text(f"Showing 1{DASH}1 of 1 job")

        page.click("#jobs-rows tr a")
        expect(page).to_have_url(f"{server.url}/#/jobs/{broken}")
        expect(page.locator("#job-title")).to_have_text("broken-scan.pdf")
        expect(page.locator("#jobs-filter")).to_be_hidden()
        expect(page.locator("#jobs-list")).to_be_hidden()
        expect(page.locator("#job-detail .job-head .badge")).to_have_text("failed")
        expect(page.locator("#job-traceback")).to_contain_text(
            "ValueError: cannot read page 3 of broken-scan.pdf")
        expect(page.locator("#job-traceback")).to_contain_text("Traceback (most recent call last)")
        events = page.locator("#job-timeline li")
        kinds = ["enqueued", "reserved", "progress", "retry", "reserved", "progress", "failed"]
        expect(events).to_have_count(len(kinds))
        assert [events.nth(i).get_attribute("data-kind") for i in range(len(kinds))] == kinds
        expect(events.nth(1)).to_contain_text("Attempt 1 started on e2e-worker:host:1")
        expect(events.nth(2)).to_contain_text("parsing page 3")
        expect(events.nth(3)).to_contain_text("retry in 0.0 s")
        expect(events.nth(6)).to_contain_text("Failed for good (parse_error: cannot read page 3")
        expect(page.locator("#job-attempts tbody tr")).to_have_count(2)
        expect(page.locator("#job-actions button")).to_have_text(["Retry", "Delete"])
        screenshot(page, "job")

        page.set_viewport_size({"width": 400, "height": 800})  # a phone: nothing spills out
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.set_viewport_size({"width": 1200, "height": 900})
        page.click("#job-retry")
        expect(page.locator("#job-action-status")).to_have_text("Queued again.")
        expect(page.locator("#job-detail .job-head .badge")).to_have_text("queued")
        expect(events).to_have_count(len(kinds) + 1)
        expect(events.last).to_contain_text("Queued again by hand (it was failed)")
        expect(page.locator("#job-actions button")).to_have_text(["Cancel", "Delete"])
        expect(page.locator("#job-error")).to_have_count(0)  # a requeued job has no error

        page.click("#job-back")
        expect(page.locator("#jobs-range")).to_have_text("No jobs")  # still filtered: failed
        page.click("#jf-clear")
        expect(page.locator("#jobs-range")).to_have_text(f"Showing 1{DASH}50 of {total} jobs")
        page.set_viewport_size({"width": 400, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
