"""The history view in Chromium, against a real server process: after an upload run by the
server's own worker and a job that failed, the per-minute and per-day charts show them, and
the table by job type has their percentiles."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest
from served import AUTH, CHROMIUM, NO_CHROMIUM, QUEUE, Server, dashboard, screenshot, serving

from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository, RepositoryConfig

NOTE = (b"# Kites\n\nA kite is a tethered heavier-than-air craft whose wings react against the "
        b"air to create lift and drag.\n")


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(redis_url, tmp_path_factory.mktemp("history-server")) as running:
        yield running


async def fail_a_delete(redis_url: str) -> None:
    """A document_delete job (its own queue: no worker of the server takes it) that fails."""
    deletes = RedisJobRepository.from_url(redis_url,
                                          RepositoryConfig(queue=f"{QUEUE}.document_delete"))
    try:
        await deletes.enqueue("document_delete", {"document_id": "doc-1",
                                                  "collection": "kites"}, max_retries=0)
        [job] = (await deletes.reserve("e2e-worker:host:1", 1, lease=60)).jobs
        await deletes.fail(job.id, job.token,
                           Failure.final(JobErrorInfo("not_found", "no document doc-1")))
    finally:
        await deletes.close()


def run_jobs(server: Server, redis_url: str) -> None:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
        upload = http.post("/api/documents/upload", data={"collection": "kites"},
                           files={"file": ("kites.md", NOTE, "text/markdown")})
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["job_id"]
        with http.stream("GET", f"/api/jobs/{job_id}/events") as stream:
            for _ in stream.iter_lines():
                pass  # the stream ends when the job does
        assert http.get(f"/api/jobs/{job_id}").json()["status"] == "completed"
        asyncio.run(fail_a_delete(redis_url))
        history = http.get("/api/history").json()
    assert sum(history["per_minute"]["processed"]) == 2
    assert sum(history["per_minute"]["failed"]) == 1


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_history_charts_show_a_run(server: Server, redis_url: str) -> None:
    from playwright.sync_api import expect

    run_jobs(server, redis_url)
    with dashboard(server, width=1200, height=900) as page:
        page.click(".tabs a[data-view=history]")
        minutes = page.locator("#history-minutes-chart")
        expect(minutes).to_be_visible()
        assert minutes.get_attribute("role") == "img"
        expect(page.locator("#history-minutes-chart-title")).to_have_text(
            "Jobs processed and failed per minute, last 24 hours")
        expect(page.locator("#history-minutes-chart-desc")).to_contain_text(
            "2 jobs processed, 1 of them failed")
        # One or two minutes have bars (the two jobs may straddle a minute): both kinds show.
        expect(minutes.locator("rect.completed")).not_to_have_count(0)
        expect(minutes.locator("rect.failed")).to_have_count(1)
        bars = minutes.locator("g.bar")
        titles = [bars.nth(i).locator("title").text_content() or "" for i in range(bars.count())]
        assert sum(int(t.split(": ")[1].split(" processed")[0]) for t in titles) == 2, titles
        for rect in minutes.locator("rect").all():
            assert float(rect.get_attribute("height") or 0) > 0

        days = page.locator("#history-days-chart")
        expect(days.locator("rect.failed")).to_have_count(1)
        expect(days.locator("g.bar").last.locator("title")).to_contain_text("processed")
        expect(page.locator("#history-days-chart-desc")).to_contain_text("2 jobs processed")

        expect(page.locator("#history-totals")).to_contain_text("processed 24 h2")
        upload = page.locator("#history-types tr[data-type=document_upload]")
        expect(upload.locator("td").nth(0)).to_have_text("1")  # completed in 24 h
        expect(upload.locator("td").nth(1)).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s|min)$"))
        delete = page.locator("#history-types tr[data-type=document_delete]")
        expect(delete.locator("td").nth(1)).to_have_text("\u2013")  # a dash: no p50
        expect(delete.locator("td").nth(6)).to_have_text("1")  # failed in 30 days
        expect(page.locator("#history-bound")).to_contain_text("±19 %")

        screenshot(page, "history")
        page.click("#history-days-card summary")  # the table equivalent of the chart
        expect(page.locator("#history-days-table tbody tr")).to_have_count(30)
        expect(page.locator("#history-days-table tbody tr").first.locator("td").first) \
            .to_have_text("2")

        page.set_viewport_size({"width": 400, "height": 800})  # a phone: the charts shrink
        box = minutes.bounding_box()
        assert box is not None and box["width"] <= 400
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
