"""The queues view in Debian's Chromium, on a real server process with its in-process upload
worker: pause the upload queue from the page (an upload then waits, while the worker's
reservations take nothing), run a delayed job now, retry dead jobs by filter, resume, and see
the worker's row count the finished job."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from served import AUTH, CHROMIUM, NO_CHROMIUM, QUEUE, Server, dashboard, screenshot, serving

from docworkers.ingest.jobs.kinds import queue_for
from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository, RepositoryConfig

NOTE = b"# Kites\n\nA kite is a tethered heavier-than-air craft that flies on the wind.\n"
EXTRACT = "metadata_extract"  # its queue has no worker in this server: jobs there stay put


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(redis_url, tmp_path_factory.mktemp("queues")) as running:
        yield running


async def _waiting_and_dead(redis_url: str) -> tuple[str, str, str]:
    """A delayed job and two dead jobs (error codes timeout and encrypted) on the metadata
    queue, which no worker serves."""
    queue = queue_for(EXTRACT, QUEUE)
    async with RedisJobRepository.from_url(redis_url, RepositoryConfig(queue=queue)) as repo:
        delayed = await repo.enqueue(EXTRACT, {"document_id": "later"}, delay=3600)
        dead = []
        for code in ("timeout", "encrypted"):
            job_id = await repo.enqueue(EXTRACT, {"document_id": f"doc-{code}"}, max_retries=0)
            [job] = (await repo.reserve("gone-worker", 1, lease=30)).jobs
            await repo.fail(job.id, job.token, Failure.retry(JobErrorInfo(code, f"{code}!")))
            dead.append(job_id)
    return delayed, dead[0], dead[1]


def _drained(client: redis.Redis) -> bool:
    return client.llen(f"dw:{{{QUEUE}}}:notify") == 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
def test_pause_and_resume_a_queue_from_the_page(server: Server, redis_url: str) -> None:
    from playwright.sync_api import expect

    delayed, timeout_dead, encrypted_dead = asyncio.run(_waiting_and_dead(redis_url))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    extract_queue = queue_for(EXTRACT, QUEUE)
    with dashboard(server, width=1300, height=900) as page, \
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        page.goto(server.url + "/#/queues")
        row = page.locator(f'#queue-rows tr[data-queue="{QUEUE}"]')
        expect(row.locator(".badge")).to_have_text("running")
        worker = page.locator("#worker-rows tr").first  # the server's own upload worker
        expect(worker).to_contain_text("fixed")
        expect(worker.locator("td.done")).to_have_text("0")

        row.get_by_role("button", name=f"Pause {QUEUE}").click()
        expect(row.locator(".badge")).to_have_text("paused")
        expect(page.locator("#queues-outcome")).to_contain_text(f"Paused {QUEUE}")
        upload = http.post("/api/documents/upload", data={"collection": "air"},
                           files={"file": ("kites.md", NOTE, "text/markdown")})
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["job_id"]
        # The upload woke the idle worker; its reservation ran on the paused queue and took
        # nothing (it dropped the wake-up tokens), so the job is still waiting.
        expect(row.locator("td.num").first).to_have_text("1")  # ready
        assert _wait(lambda: _drained(client))
        assert http.get(f"/api/jobs/{job_id}").json()["status"] == "queued"
        expect(worker.locator("td.busy")).to_have_text(re.compile(r"^0 / \d+$"))

        scheduled = page.locator(f'#scheduled-rows tr[data-scheduled-id="{delayed}"]')
        expect(scheduled).to_contain_text("delayed")
        page.select_option("#scheduled-kind", "retrying")
        expect(scheduled).to_have_count(0)
        expect(page.locator("#no-scheduled")).to_have_text("No retrying jobs.")
        page.select_option("#scheduled-kind", "delayed")
        expect(scheduled).to_contain_text("delayed")
        expect(page.locator("#dead-rows tr")).to_have_count(2)
        screenshot(page, "queues")

        scheduled.get_by_role("button").click()
        expect(scheduled).to_have_count(0)
        extract_row = page.locator(f'#queue-rows tr[data-queue="{extract_queue}"]')
        expect(extract_row.locator("td.num").first).to_have_text("1")  # ready now

        page.fill("#dead-code", "timeout")
        page.click("#dead-filter button[type=submit]")
        expect(page.locator("#dead-rows tr")).to_have_count(1)
        expect(page.locator("#dead-count")).to_have_text("1 dead job match")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#dead-retry")
        expect(page.locator("#queues-outcome")).to_have_text("Queued 1 dead job again.")
        expect(page.locator("#dead-rows tr")).to_have_count(0)
        assert http.get(f"/api/jobs/{timeout_dead}").json()["status"] == "queued"
        assert http.get(f"/api/jobs/{encrypted_dead}").json()["status"] == "dead"

        row.get_by_role("button", name=f"Resume {QUEUE}").click()
        expect(row.locator(".badge")).to_have_text("running")
        expect(worker.locator("td.done")).to_have_text("1", timeout=60_000)
        assert http.get(f"/api/jobs/{job_id}").json()["status"] == "completed"
        seen = worker.locator("td.seen").inner_text()
        assert seen.endswith(" s")

        # A narrow window: the tables scroll inside their cards, the page itself does not.
        page.set_viewport_size({"width": 400, "height": 800})
        expect(row.locator(".badge")).to_have_text("running")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    client.close()


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_the_queue_endpoints_on_the_server(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/api/queues").status_code == 401
        body = http.get("/api/queues", headers=AUTH).json()
        [worker] = body["workers"]
        assert worker["host"] and worker["pid"] and worker["queue"] == QUEUE
        assert worker["age_seconds"] is not None and worker["age_seconds"] >= 0
        names = [q["name"] for q in body["queues"]]
        assert names[0] == QUEUE and queue_for(EXTRACT, QUEUE) in names
