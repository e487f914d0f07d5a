"""GET /api/history and the history's numbers in /metrics, over the real queues: jobs of two
types (so two queues: the base and a routed type's) finished by the real scripts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from api_support import running_api
from prometheus_client.parser import text_string_to_metric_families

from docworkers.queue import Failure, JobErrorInfo, RedisJobRepository
from docworkers.queue.history import (
    BOUNDS_MS,
    ERROR_BOUND,
    MAX_DAYS,
    MAX_MINUTES,
    bin_value,
    duration_bin,
)
from docworkers.settings import Settings

ERR = JobErrorInfo("boom", "it broke")
TOKEN = "history-token"


async def finish(repo: RedisJobRepository, job_type: str, completed: int, failed: int
                 ) -> list[int]:
    """Run ``completed`` + ``failed`` jobs of ``job_type`` through the queue's scripts (one
    completion batch); the durations the completions recorded (ms, Redis's clock)."""
    for _ in range(completed + failed):
        await repo.enqueue(job_type, {}, max_retries=0)
    jobs = (await repo.reserve("w", completed + failed, 30)).jobs
    assert len(jobs) == completed + failed
    for job in jobs[completed:]:
        await repo.fail(job.id, job.token, Failure.final(ERR))
    await repo.complete_many([(job.id, job.token, None) for job in jobs[:completed]])
    took = []
    for job in jobs[:completed]:
        stored = await repo.get_job(job.id)
        assert stored.completed_at and stored.started_at
        took.append(round((stored.completed_at - stored.started_at).total_seconds() * 1000))
    return took


async def test_history_adds_up_every_queue(api: Any) -> None:
    queues = api.runtime.queues
    uploads = await finish(queues.for_type("document_upload"), "document_upload", 3, 1)
    deletes = await finish(queues.for_type("document_delete"), "document_delete", 2, 2)
    assert queues.for_type("document_delete").queue != queues.for_type("document_upload").queue

    response = await api.get("/api/history")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"now_ms", "per_minute", "per_day", "by_type", "error_bound"}
    minutes, days = body["per_minute"], body["per_day"]
    assert minutes["step_ms"] == 60_000 and days["step_ms"] == 86_400_000
    assert len(minutes["processed"]) == len(minutes["failed"]) == MAX_MINUTES
    assert len(days["processed"]) == len(days["failed"]) == MAX_DAYS
    assert minutes["start_ms"] + MAX_MINUTES * 60_000 > body["now_ms"] >= \
        minutes["start_ms"] + (MAX_MINUTES - 1) * 60_000
    assert sum(minutes["processed"]) == sum(days["processed"]) == 8
    assert sum(minutes["failed"]) == sum(days["failed"]) == 3
    assert days["processed"][-1] + days["processed"][-2] == 8  # today (or just before midnight)
    assert body["error_bound"] == ERROR_BOUND

    assert set(body["by_type"]) == {"document_upload", "document_delete"}
    for job_type, took, failed in (("document_upload", uploads, 1),
                                   ("document_delete", deletes, 2)):
        row = body["by_type"][job_type]
        assert row["failed_30d"] == failed
        for window in (row["last_24h"], row["last_30d"]):
            assert window["completed"] == len(took)
            ordered = sorted(took)
            assert window["p50_ms"] == bin_value(duration_bin(ordered[(len(took) + 1) // 2 - 1]))
            assert window["p95_ms"] == bin_value(duration_bin(ordered[-1]))


async def test_history_parameters_and_their_bounds(api: Any) -> None:
    body = (await api.get("/api/history?minutes=60&days=7")).json()
    assert len(body["per_minute"]["processed"]) == 60 and len(body["per_day"]["failed"]) == 7
    assert body["by_type"] == {}
    one = (await api.get(f"/api/history?minutes=1&days={MAX_DAYS}")).json()
    assert one["per_minute"]["processed"] == [0]
    for query in ("minutes=0", f"minutes={MAX_MINUTES + 1}", "days=0", f"days={MAX_DAYS + 1}",
                  "minutes=ten", "days=-1"):
        response = await api.get(f"/api/history?{query}")
        assert response.status_code == 422, query
        name = query.split("=")[0]
        assert response.json()["error"]["code"] == "invalid_request"
        assert name in response.json()["error"]["fields"], response.json()


async def test_history_is_behind_the_token_and_documented(settings: Settings,
                                                          embedder: Any) -> None:
    async with running_api(replace(settings, api_token=TOKEN), embedder) as api:
        assert (await api.get("/api/history")).status_code == 401
        ok = await api.get("/api/history", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        schema = (await api.get("/openapi.json")).json()
    operation = schema["paths"]["/api/history"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"minutes", "days"}
    minutes = next(p for p in operation["parameters"] if p["name"] == "minutes")
    assert (minutes["schema"]["minimum"], minutes["schema"]["maximum"]) == (1, MAX_MINUTES)
    reply = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply["$ref"].endswith("/HistoryResponse")
    assert "p95_ms" in schema["components"]["schemas"]["DurationWindow"]["properties"]


async def test_metrics_has_the_duration_histogram_and_failed_attempts(api: Any) -> None:
    queues = api.runtime.queues
    took = await finish(queues.for_type("document_upload"), "document_upload", 4, 1)
    await finish(queues.for_type("document_delete"), "document_delete", 0, 2)
    text = (await api.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    histogram = families["docworkers_job_duration_seconds"]
    assert histogram.type == "histogram"
    samples = [s for s in histogram.samples if s.labels.get("type") == "document_upload"]
    assert {s.labels["queue"] for s in samples} == {"api"}
    buckets = [s for s in samples if s.name.endswith("_bucket")]
    assert [float(s.labels["le"]) for s in buckets] == [b / 1000 for b in BOUNDS_MS] + \
        [float("inf")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and counts[-1] == 4  # cumulative, every job in +Inf
    for s in buckets[:-1]:
        assert s.value == sum(1 for ms in took if ms <= float(s.labels["le"]) * 1000 + 1e-9)
    total = next(s for s in samples if s.name.endswith("_sum")).value
    assert abs(total - sum(took) / 1000) < 1e-9
    assert next(s for s in samples if s.name.endswith("_count")).value == 4

    failures = {s.labels["type"]: s.value for s in families["docworkers_job_failures"].samples
                if s.name.endswith("_total")}
    assert failures == {"document_upload": 1, "document_delete": 2}
