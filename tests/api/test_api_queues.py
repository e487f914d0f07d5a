"""Queue endpoints against the real repository: every queue of the deployment with its depth and
pause state, pause and resume, scheduled jobs with run-now, dead jobs by filter in bulk, live
workers with their outcomes, and the token."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from api_support import ApiClient, running_api

from docworkers.ingest.jobs.kinds import ROUTED_TYPES, queue_for
from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository
from docworkers.settings import Settings
from docworkers.workers.stats import WorkerStats

TOKEN = "queues-test-token"


async def make_dead(jobs: RedisJobRepository, job_type: str, code: str, message: str) -> str:
    job_id = await jobs.enqueue(job_type, {"filename": f"{code}.pdf"}, max_retries=0)
    [job] = (await jobs.reserve("test-worker", 1, lease=30)).jobs
    await jobs.fail(job.id, job.token, Failure.retry(JobErrorInfo(code, message)))
    return job_id


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {queue["name"]: queue for queue in body["queues"]}


async def test_every_queue_with_its_depth_and_pause(api: ApiClient) -> None:
    runtime = api.runtime
    base = runtime.settings.queue
    routed = queue_for(ROUTED_TYPES[0], base)
    await runtime.jobs.enqueue("report", {})
    await runtime.jobs.enqueue("report", {}, delay=3600)
    body = (await api.get("/api/queues")).json()
    queues = by_name(body)
    assert list(queues) == list(runtime.queues.queues) and routed in queues
    assert queues[base]["depth"]["ready"] == 1 and queues[base]["depth"]["delayed"] == 1
    assert queues[base]["paused"] is False and queues[base]["paused_since"] is None
    assert body["workers"] == []

    paused = await api.post(f"/api/queues/{routed}/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert paused.json()["paused_since"]
    queues = by_name((await api.get("/api/queues")).json())
    assert queues[routed]["paused"] and not queues[base]["paused"]
    assert (await api.get("/api/jobs/stats")).json()["paused"] == [routed]
    resumed = await api.post(f"/api/queues/{routed}/resume")
    assert resumed.json()["paused"] is False
    assert (await api.post(f"/api/queues/{routed}/resume")).status_code == 200  # idempotent

    missing = await api.post("/api/queues/not-a-queue/pause")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert base in missing.json()["error"]["message"]


async def test_scheduled_jobs_and_run_now(api: ApiClient) -> None:
    jobs = api.runtime.jobs
    delayed = await jobs.enqueue("report", {}, delay=3600)
    retried = await jobs.enqueue("report", {})
    [job] = (await jobs.reserve("w", 1, lease=30)).jobs
    await jobs.fail(job.id, job.token, Failure.retry(JobErrorInfo("boom", "no"), delay=3600))
    base = f"/api/queues/{jobs.queue}"

    async def ids(query: str = "") -> list[str]:
        response = await api.get(f"{base}/scheduled{query}")
        assert response.status_code == 200
        return [j["id"] for j in response.json()["jobs"]]

    assert set(await ids()) == {delayed, retried}
    assert await ids("?kind=delayed") == [delayed]
    assert await ids("?kind=retrying") == [retried]
    assert (await api.get(f"{base}/scheduled?kind=dead")).status_code == 422

    ran = await api.post(f"{base}/jobs/{retried}/run-now")
    assert ran.status_code == 200
    assert ran.json()["status"] == "queued" and ran.json()["retries"] == 1
    again = await api.post(f"{base}/jobs/{retried}/run-now")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"
    assert (await api.post(f"{base}/jobs/nope/run-now")).status_code == 404
    assert await ids() == [delayed]


async def test_dead_jobs_by_filter_in_bulk(api: ApiClient) -> None:
    jobs = api.runtime.jobs
    timeout_a = await make_dead(jobs, "report", "timeout", "slow server")
    timeout_b = await make_dead(jobs, "report", "timeout", "slow again")
    parse = await make_dead(jobs, "report", "parse_error", "bad table")

    async def listed(query: str) -> tuple[set[str], int]:
        body = (await api.get(f"/api/dead?{query}")).json()
        return {j["id"] for j in body["jobs"]}, body["total"]

    assert await listed("code=timeout") == ({timeout_a, timeout_b}, 2)
    # "TABLE", not "BAD": the text filter reads job ids too, and a hex id may hold "bad"
    assert await listed("text=TABLE") == ({parse}, 1)
    assert await listed("text=parse_error.pdf") == ({parse}, 1)  # the payload's file name
    page, total = await listed("limit=1")
    assert len(page) == 1 and total == 3

    retried = await api.post("/api/dead/retry", json={"codes": ["timeout"], "text": "again"})
    assert retried.json() == {"retried": 1}
    assert (await jobs.get_job(timeout_b)).status == "queued"
    refused = await api.post("/api/dead/delete", json={"codez": ["timeout"]})
    assert refused.status_code == 422  # a misspelt filter is an error, not "delete all"
    deleted = await api.post("/api/dead/delete", json={"codes": ["timeout"]})
    assert deleted.json() == {"deleted": 1}
    assert await jobs.find_job(timeout_a) is None
    assert await listed("") == ({parse}, 1)


async def test_workers_show_host_jobs_outcomes_and_age(api: ApiClient) -> None:
    jobs = api.runtime.jobs
    stats = WorkerStats(
        worker_name="w-remote", jobs_processed=6, jobs_succeeded=3, jobs_failed=3,
        average_process_time=0.5, last_job_time=None, uptime=10.0, is_running=True,
        in_flight=1, concurrency=4, queue=jobs.queue, pid=4242, host="box", scaling="backlog",
        min_concurrency=1, max_concurrency=4, breakers={"chroma": "open"},
        outcomes={"completed": 3, "retrying": 1, "failed": 2},
        current_jobs=[{"id": "j1", "type": "report", "started_at": None}],
        updated_at=0.0)
    await jobs.heartbeat("w-remote", stats.to_dict(), ttl=30, lease=30, jobs=[])
    [worker] = (await api.get("/api/queues")).json()["workers"]
    assert (worker["host"], worker["pid"], worker["concurrency"]) == ("box", 4242, 4)
    assert worker["current_jobs"][0]["id"] == "j1" and worker["scaling"] == "backlog"
    assert worker["breakers"] == {"chroma": "open"}
    assert worker["outcomes"]["failed"] == 2 and worker["outcomes"]["retrying"] == 1
    assert worker["age_seconds"] is None  # updated_at unknown: no age is made up


async def test_queue_endpoints_need_the_token(settings: Settings, embedder: Any) -> None:
    async with running_api(replace(settings, api_token=TOKEN), embedder) as api:
        queue = settings.queue
        for method, path in (("GET", "/api/queues"), ("POST", f"/api/queues/{queue}/pause"),
                             ("POST", f"/api/queues/{queue}/resume"),
                             ("GET", f"/api/queues/{queue}/scheduled"),
                             ("POST", f"/api/queues/{queue}/jobs/x/run-now"),
                             ("GET", "/api/dead"), ("POST", "/api/dead/retry"),
                             ("POST", "/api/dead/delete")):
            response = await api.request(method, path)
            assert response.status_code == 401, (method, path)
        assert await api.runtime.jobs.paused_since() is None
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert (await api.get("/api/queues", headers=good)).status_code == 200
        paths = (await api.get("/openapi.json")).json()["paths"]
        assert "/api/queues/{queue}/pause" in paths and "/api/dead/retry" in paths
