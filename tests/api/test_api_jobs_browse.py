"""Browsing jobs through the API: filters on every field, paging with a total, and a job's
page (traceback, attempts, timeline, actions) after a real worker failed it once and then ran
it to completion."""

from __future__ import annotations

import asyncio
from typing import Any

from api_support import ApiClient

from docworkers.queue import Job, JobStatus
from docworkers.queue.events import EVENT_CAP
from docworkers.workers import FunctionWorker, JobContext, WorkerConfig


async def listed(api: ApiClient, query: str) -> dict[str, Any]:
    response = await api.get(f"/api/jobs?{query}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_filters_on_every_field_and_pages_with_a_total(api: ApiClient) -> None:
    queues = api.runtime.queues
    uploads = queues.for_type("document_upload")
    deletes = queues.for_type("document_delete")
    assert uploads.queue != deletes.queue  # two queues, listed together
    made: list[str] = []
    for i in range(45):
        made.append(await uploads.enqueue(
            "document_upload", {"filename": f"Annual report {i}.pdf",
                                "collection": "finance" if i % 3 == 0 else "docs"},
            user_id="ann" if i % 5 == 0 else "bob", tags=["q4"] if i % 9 == 0 else []))
        await asyncio.sleep(0.002)  # listed by creation time, to the millisecond
    gone = await deletes.enqueue("document_delete", {"document_id": "d1",
                                                     "collection": "finance"})
    await deletes.cancel(gone)

    everything = await listed(api, "limit=20")
    assert everything["total"] == 46 and everything["count"] == 20
    assert [j["id"] for j in everything["jobs"]] == [gone, *reversed(made[-19:])]
    assert "document_upload" in everything["types"] and deletes.queue in everything["queues"]
    third = await listed(api, "limit=20&offset=40")
    assert [j["id"] for j in third["jobs"]] == list(reversed(made[:6])) and third["total"] == 46

    finance = await listed(api, "collection=finance&limit=5&offset=5")
    assert finance["total"] == 16 and finance["count"] == 5
    assert all(j["payload"]["collection"] == "finance" for j in finance["jobs"])
    assert (await listed(api, f"queue={deletes.queue}"))["total"] == 1
    assert [j["id"] for j in (await listed(api, "type=document_delete"))["jobs"]] == [gone]
    assert (await listed(api, "status=cancelled"))["total"] == 1
    assert (await listed(api, "status=queued&type=document_upload"))["total"] == 45
    text = await listed(api, "text=REPORT%204")  # 4, 40..44
    assert sorted(j["payload"]["filename"] for j in text["jobs"]) == sorted(
        f"Annual report {i}.pdf" for i in (4, 40, 41, 42, 43, 44))
    assert (await listed(api, "user=ann&collection=finance"))["total"] == 3  # 0, 15, 30
    assert (await listed(api, "tag=q4"))["total"] == 5
    docs = await listed(api, "payload=collection%3Ddocs&text=report%201")
    assert docs["total"] == 8  # 1 and 10-19, less the finance ones 12, 15, 18
    assert (await listed(api, "queue=nowhere"))["total"] == 0
    bad = await api.get("/api/jobs?payload=collection")
    assert bad.status_code == 422 and "payload" in bad.json()["error"]["fields"]


async def test_a_failed_then_completed_job_shows_its_attempts_and_timeline(
        api: ApiClient) -> None:
    jobs = api.runtime.jobs
    runs = 0

    async def flaky(job: Job, ctx: JobContext) -> dict[str, int]:
        nonlocal runs
        runs += 1
        await ctx.progress(40, f"reading attempt {runs}")
        if runs == 1:
            raise RuntimeError("the disk was busy")
        return {"pages": 3}

    config = WorkerConfig(worker_name="browse-worker", poll_interval=60.0, retry_delay=0.0)
    async with FunctionWorker(config, job_repo=jobs, handlers={"flaky": flaky}):
        job_id = await jobs.enqueue("flaky", {"filename": "busy.pdf"}, max_retries=2)
        async with asyncio.timeout(20):
            while (await jobs.get_job(job_id)).status != JobStatus.COMPLETED:
                await asyncio.sleep(0.02)

    response = await api.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "completed" and job["result"] == {"pages": 3}
    assert job["error"] is None and job["actions"] == ["delete"]
    assert job["events_cap"] == EVENT_CAP
    kinds = [event["kind"] for event in job["timeline"]]
    assert kinds == ["enqueued", "reserved", "progress", "retry", "reserved", "progress",
                     "completed"]
    retry = job["timeline"][3]
    assert retry["code"] and "the disk was busy" in retry["message"]
    assert retry["delay_ms"] == 0 and retry["run_at"]
    assert job["timeline"][2]["message"] == "reading attempt 1"
    first, second = job["attempts"]
    assert first["worker"] == second["worker"]  # the worker's id: name, host, pid, nonce
    assert str(first["worker"]).startswith("browse-worker:")
    assert (first["outcome"], second["outcome"]) == ("retry", "completed")
    assert first["lease_until"] and "the disk was busy" in first["error"]["message"]
    assert second["error"] is None and second["last_message"] == "reading attempt 2"


async def test_a_failed_job_shows_its_traceback_and_the_actions_that_apply(
        api: ApiClient) -> None:
    jobs = api.runtime.jobs

    async def broken(job: Job, ctx: JobContext) -> None:
        raise ValueError("cannot read page 7")

    config = WorkerConfig(worker_name="browse-worker", poll_interval=60.0, retry_delay=0.0)
    async with FunctionWorker(config, job_repo=jobs, handlers={"broken": broken}):
        job_id = await jobs.enqueue("broken", {}, max_retries=0)
        async with asyncio.timeout(20):
            while not (await jobs.get_job(job_id)).is_terminal:
                await asyncio.sleep(0.02)

    job = (await api.get(f"/api/jobs/{job_id}")).json()
    assert job["status"] in ("failed", "dead")
    assert "ValueError: cannot read page 7" in job["error"]["traceback"]
    assert job["actions"] == (["retry", "delete"] if job["status"] == "failed"
                              else ["requeue", "delete"])
    assert job["timeline"][-1]["kind"] == job["status"]
    retried = await api.post(f"/api/jobs/{job_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    again = (await api.get(f"/api/jobs/{job_id}")).json()
    assert again["timeline"][-1] == {**again["timeline"][-1], "kind": "requeued",
                                     "previous": job["status"]}
    assert again["actions"] == ["cancel", "delete"]


async def test_the_openapi_document_describes_the_job_page(api: ApiClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    listing = spec["paths"]["/api/jobs"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "type", "status", "queue", "tag", "user", "collection", "payload", "text", "limit",
        "offset"}
    detail = spec["paths"]["/api/jobs/{job_id}"]["get"]["description"]
    assert "timeline" in detail and "attempts" in detail and str(EVENT_CAP) in detail
