"""Job, stats, worker and dead-letter endpoints against the real repository."""

from __future__ import annotations

import asyncio

import pytest
from api_support import ApiClient, parse_sse

from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository


async def tick() -> None:
    """Let the clock move on: lists are ordered by millisecond timestamps."""
    await asyncio.sleep(0.005)


async def make_dead(jobs: RedisJobRepository, job_type: str = "flaky") -> str:
    """A job that failed its only attempt with a retryable error and so was dead-lettered.
    Call it while no other job is queued: it reserves whatever comes first."""
    job_id = await jobs.enqueue(job_type, {"n": 1}, max_retries=0)
    reservation = await jobs.reserve("test-worker", 1, lease=30)
    [job] = reservation.jobs
    await jobs.fail(job.id, job.token, Failure.retry(JobErrorInfo("boom", "the service said no")))
    return job_id


async def test_get_job_shows_status_progress_and_timings(api: ApiClient) -> None:
    job_id = await api.runtime.jobs.enqueue("report", {"x": 1}, priority=3)
    response = await api.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200
    job = response.json()
    assert job["id"] == job_id and job["status"] == "queued" and job["priority"] == 3
    assert job["progress"] == 0 and job["retries"] == 0 and job["payload"] == {"x": 1}
    assert job["timings"] == {"wait_ms": None, "processing_ms": None, "stages_ms": {}}
    assert job["result"] is None and job["error"] is None and job["created_at"]


async def test_unknown_and_invalid_job_ids(api: ApiClient) -> None:
    missing = await api.get("/api/jobs/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    for path in ("/api/jobs/nope/cancel", "/api/jobs/nope/retry"):
        assert (await api.post(path)).status_code == 404
    assert (await api.get("/api/jobs/nope/events")).status_code == 404
    invalid = await api.get("/api/jobs/bad%20id!")
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_job_id"


async def test_list_filters_by_type_status_tag_and_user(api: ApiClient) -> None:
    jobs = api.runtime.jobs
    a = await jobs.enqueue("alpha", {}, tags=["red", "big"], user_id="ann")
    await tick()
    b = await jobs.enqueue("alpha", {}, tags=["red"], user_id="bob")
    await tick()
    c = await jobs.enqueue("beta", {}, user_id="ann")
    await jobs.cancel(c)

    async def ids(query: str) -> list[str]:
        response = await api.get(f"/api/jobs?{query}")
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["jobs"]]

    assert await ids("") == [c, b, a]
    assert await ids("type=alpha") == [b, a]
    assert await ids("type=alpha&type=beta&status=cancelled") == [c]
    assert await ids("status=queued&status=cancelled") == [c, b, a]
    assert await ids("tag=red&tag=big") == [a]
    assert await ids("user=ann") == [c, a]
    assert await ids("limit=1&offset=1") == [b]
    bad = await api.get("/api/jobs?status=sleeping")
    assert bad.status_code == 422 and "status" in bad.json()["error"]["fields"]
    too_many = await api.get("/api/jobs?limit=0")
    assert too_many.status_code == 422 and too_many.json()["error"]["fields"] == {
        "limit": "Input should be greater than or equal to 1"}


async def test_cancel_then_retry_and_the_409s(api: ApiClient) -> None:
    job_id = await api.runtime.jobs.enqueue("report", {})
    retry_queued = await api.post(f"/api/jobs/{job_id}/retry")
    assert retry_queued.status_code == 409
    assert retry_queued.json()["error"]["code"] == "invalid_state"
    cancelled = await api.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["cancel"] == "cancelled"
    assert cancelled.json()["job"]["status"] == "cancelled"
    again = await api.post(f"/api/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "nothing to cancel" in again.json()["error"]["message"]
    retried = await api.post(f"/api/jobs/{job_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    deleted = await api.delete(f"/api/jobs/{job_id}")
    assert deleted.status_code == 200
    assert (await api.delete(f"/api/jobs/{job_id}")).status_code == 404


async def test_cancelling_a_running_job_is_a_request(api: ApiClient) -> None:
    jobs = api.runtime.jobs
    job_id = await jobs.enqueue("report", {})
    await jobs.reserve("test-worker", 1, lease=30)
    response = await api.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["cancel"] == "requested"
    assert (await api.delete(f"/api/jobs/{job_id}")).status_code == 409


async def test_stats_and_workers(api: ApiClient) -> None:
    jobs = api.runtime.jobs
    await make_dead(jobs)
    await jobs.enqueue("report", {})
    await jobs.enqueue("report", {}, delay=60)
    stats = (await api.get("/api/jobs/stats")).json()
    assert stats["queue"] == "api"
    assert stats["by_status"]["queued"] == 2 and stats["by_status"]["dead"] == 1
    assert stats["queue_depth"] == 2 and stats["total_dead"] == 1
    assert stats["active_workers"] == 0 and stats["workers"] == []
    workers = (await api.get("/api/workers")).json()
    assert workers == {"workers": [], "count": 0}


async def test_dead_letter_queue(api: ApiClient) -> None:
    jobs = api.runtime.jobs
    first = await make_dead(jobs)
    await tick()
    second = await make_dead(jobs)
    alive = await jobs.enqueue("report", {})
    listed = (await api.get("/api/dlq")).json()
    assert [job["id"] for job in listed["jobs"]] == [second, first]
    assert listed["jobs"][0]["error"]["message"] == "the service said no"
    one = await api.get(f"/api/dlq/{first}")
    assert one.status_code == 200 and one.json()["status"] == "dead"
    not_dead = await api.get(f"/api/dlq/{alive}")
    assert not_dead.status_code == 404 and "not in the dead-letter" in not_dead.text
    requeued = await api.post(f"/api/dlq/{first}/requeue")
    assert requeued.status_code == 200 and requeued.json()["status"] == "queued"
    assert (await api.post(f"/api/dlq/{first}/requeue")).status_code == 404
    purged = await api.delete("/api/dlq")
    assert purged.json() == {"deleted": 1}
    assert (await api.get("/api/dlq")).json()["jobs"] == []
    assert (await api.get(f"/api/jobs/{second}")).status_code == 404


async def test_events_of_a_finished_job_end_at_once(api: ApiClient) -> None:
    job_id = await api.runtime.jobs.enqueue("report", {})
    await api.post(f"/api/jobs/{job_id}/cancel")
    response = await api.get(f"/api/jobs/{job_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [(name, data["status"]) for name, data in events] == [("job", "cancelled")]


@pytest.mark.parametrize("path", ["/api/jobs/x/cancel", "/api/dlq"])
async def test_wrong_method_is_a_json_405(api: ApiClient, path: str) -> None:
    response = await api.put(path)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
