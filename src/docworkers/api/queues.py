"""Queue endpoints: every queue of the deployment with its depth by state and whether it is
paused, the live workers, pause and resume, the scheduled (delayed and retrying) jobs with
"run now", and the dead-lettered jobs filtered, retried or deleted in bulk.

The deployment's queues are the configured one and one per routed job type (see
:mod:`docworkers.ingest.jobs.kinds`); a queue outside them is a 404, not a new empty queue.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from docworkers.api.errors import ApiError
from docworkers.api.jobs import job_view
from docworkers.api.limits import MAX_JOB_ID
from docworkers.api.security import require_token
from docworkers.api.state import ApiState, api_state
from docworkers.queue import Job, JobStatus, QueueStats, RedisJobRepository
from docworkers.queue.dead_filter import MAX_TEXT, DeadLetterFilter
from docworkers.queue.job import iso_time
from docworkers.queue.routing import RoutedQueues

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
State = Annotated[ApiState, Depends(api_state)]
QueueName = Annotated[str, PathParam(min_length=1, max_length=128)]
JobId = Annotated[str, PathParam(min_length=1, max_length=MAX_JOB_ID)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=100_000)]
Name = Annotated[str, Field(min_length=1, max_length=128)]

#: The kinds of scheduled job: delayed ones are queued with a later run time.
SCHEDULED = {"delayed": JobStatus.QUEUED, "retrying": JobStatus.RETRYING}
_EPOCH = datetime.min.replace(tzinfo=UTC)


def _queues(state: ApiState) -> RoutedQueues:
    return state.runtime.queues


def _repository(state: ApiState, queue: str) -> RedisJobRepository:
    """The repository of ``queue`` if it is one of the deployment's, else a 404."""
    routed = _queues(state)
    for repo in routed.holding():
        if repo.queue == queue:
            return repo
    raise ApiError(404, "not_found", f"no queue {queue[:128]!r}; this server's queues are "
                                     f"{', '.join(routed.queues)}")


def queue_view(stats: QueueStats, paused_since: datetime | None) -> dict[str, Any]:
    """A queue's depth by state: ``ready`` jobs wait for a worker, ``delayed`` and
    ``retrying`` for their time."""
    by = stats.by_status
    depth = {"ready": by.get("queued", 0) - stats.delayed, "delayed": stats.delayed,
             "retrying": by.get("retrying", 0), "processing": by.get("processing", 0),
             "pending": by.get("pending", 0), "completed": by.get("completed", 0),
             "failed": by.get("failed", 0), "dead": by.get("dead", 0),
             "cancelled": by.get("cancelled", 0)}
    return {"name": stats.queue, "paused": bool(stats.paused),
            "paused_since": iso_time(paused_since), "depth": depth,
            "workers": stats.active_workers}


def live_workers(state: ApiState, workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Workers as their heartbeats published them (at most about a second old), this
    process's own with their current numbers, each with ``age_seconds``: how old its numbers
    are (by this server's clock)."""
    local = {name: stats.to_dict() for name, stats in state.pool.get_all_stats().items()}
    now = time.time()
    shown = []
    for worker in workers:
        current = dict(local.get(str(worker.get("worker_name")), worker))
        updated = current.get("updated_at")
        try:
            age = max(0.0, now - datetime.fromisoformat(str(updated)).timestamp())
        except ValueError:
            age = None
        current["age_seconds"] = None if age is None else round(age, 3)
        shown.append(current)
    return shown


async def _queue(repo: RedisJobRepository, stats: QueueStats | None = None) -> dict[str, Any]:
    return queue_view(stats or await repo.stats(), await repo.paused_since())


def _died(job: Job) -> datetime:
    return job.completed_at or job.updated_at or job.created_at or _EPOCH


@router.get("/queues", tags=["queues"], summary="Every queue: depth by state, paused or not, "
            "and the live workers",
            description="One entry per queue of this deployment (the configured queue first, "
                        "then one per job type that has a queue of its own), with the job "
                        "types it holds. `depth.ready` "
                        "jobs wait for a worker; `delayed` and `retrying` ones for their "
                        "time. A paused queue keeps its jobs, but no worker reserves them. "
                        "`workers` are the live workers of every queue, with their host, "
                        "process, running jobs, concurrency and scaling decision, circuit "
                        "breakers and `outcomes` (the status each finished attempt left its "
                        "job in); `age_seconds` says how old a worker's numbers are.")
async def list_queues(state: State) -> dict[str, Any]:
    routed = _queues(state)
    repos = routed.holding()
    stats = await asyncio.gather(*(repo.stats() for repo in repos))
    views = await asyncio.gather(*(_queue(repo, part)
                                   for repo, part in zip(repos, stats, strict=True)))
    types: dict[str, list[str]] = {}
    for job_type in routed.router.known or routed.router.routed:
        types.setdefault(routed.router.queue_for(job_type), []).append(job_type)
    for view in views:
        view["job_types"] = types.get(view["name"], [])
    workers = [worker for part in stats for worker in part.workers]
    return {"queues": views, "workers": live_workers(state, workers)}


@router.post("/queues/{queue}/pause", tags=["queues"], summary="Pause a queue",
             description="Workers stop reserving the queue's jobs; running jobs finish, new "
                         "jobs are still accepted, and nothing is lost or failed. Pausing a "
                         "paused queue changes nothing.")
async def pause_queue(queue: QueueName, state: State) -> dict[str, Any]:
    repo = _repository(state, queue)
    await repo.pause()
    return await _queue(repo)


@router.post("/queues/{queue}/resume", tags=["queues"], summary="Resume a paused queue",
             description="Workers reserve the queue's jobs again; idle ones are woken at once.")
async def resume_queue(queue: QueueName, state: State) -> dict[str, Any]:
    repo = _repository(state, queue)
    await repo.resume()
    return await _queue(repo)


@router.get("/queues/{queue}/scheduled", tags=["queues"],
            summary="Jobs waiting for their time, soonest first")
async def list_scheduled(
    queue: QueueName, state: State,
    kind: Annotated[Literal["delayed", "retrying"] | None, Query(
        description="delayed (enqueued with a delay) or retrying (waiting for the next "
                    "attempt); both when absent")] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> dict[str, Any]:
    repo = _repository(state, queue)
    jobs = await repo.scheduled_jobs(None if kind is None else SCHEDULED[kind], limit=limit,
                                     offset=offset)
    return {"jobs": [job_view(j) for j in jobs], "count": len(jobs), "limit": limit,
            "offset": offset}


@router.post("/queues/{queue}/jobs/{job_id}/run-now", tags=["queues"],
             summary="Run a delayed or retrying job now",
             description="Moves the job to the ready queue at its priority; a retry keeps its "
                         "retry count. 409 if the job is not waiting for its time.")
async def run_now(queue: QueueName, job_id: JobId, state: State) -> dict[str, Any]:
    repo = _repository(state, queue)
    await repo.run_now(job_id)
    return job_view(await repo.get_job(job_id))


# -- dead letters by filter ---------------------------------------------------------------------


class DeadFilterRequest(BaseModel):
    """Which dead jobs a bulk action applies to; empty lists and text match every one."""

    model_config = ConfigDict(extra="forbid")

    types: list[Name] = Field(default_factory=list, max_length=20, description="job types")
    codes: list[Name] = Field(default_factory=list, max_length=20, description="error codes")
    text: str = Field(default="", max_length=MAX_TEXT,
                      description="in the id, type, error or payload (any case)")

    def to_filter(self) -> DeadLetterFilter:
        return DeadLetterFilter.of(types=self.types, codes=self.codes, text=self.text)


def _holding(state: ApiState, dead_filter: DeadLetterFilter) -> list[RedisJobRepository]:
    return _queues(state).holding(dead_filter.types)


@router.get("/dead", tags=["dead letters"], summary="Dead-lettered jobs matching a filter",
            description="Most recent first, from every queue; `total` is how many match.")
async def list_dead(
    state: State,
    type: Annotated[list[str] | None, Query(description="job type; repeat for several")] = None,
    code: Annotated[list[str] | None, Query(description="error code; repeat for several")
                    ] = None,
    text: Annotated[str | None, Query(max_length=MAX_TEXT, description=(
        "in the id, type, error or payload (any case)"))] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> dict[str, Any]:
    dead_filter = DeadLetterFilter.of(types=type or (), codes=code or (), text=text)
    found: list[Job] = []
    total = 0
    for repo in _holding(state, dead_filter):
        jobs, matched = await repo.dead_matching(dead_filter, limit=offset + limit)
        found += jobs
        total += matched
    found.sort(key=_died, reverse=True)
    page = found[offset:offset + limit]
    return {"jobs": [job_view(j) for j in page], "count": len(page), "total": total,
            "limit": limit, "offset": offset}


@router.post("/dead/retry", tags=["dead letters"],
             summary="Queue again every dead job that matches the filter",
             description="Each with a fresh retry budget. Answers how many were queued.")
async def retry_dead(request: DeadFilterRequest, state: State) -> dict[str, int]:
    dead_filter = request.to_filter()
    return {"retried": sum([await repo.retry_dead(dead_filter)
                            for repo in _holding(state, dead_filter)])}


@router.post("/dead/delete", tags=["dead letters"],
             summary="Delete every dead job that matches the filter",
             description="For good. Answers how many were deleted.")
async def delete_dead(request: DeadFilterRequest, state: State) -> dict[str, int]:
    dead_filter = request.to_filter()
    return {"deleted": sum([await repo.delete_dead(dead_filter)
                            for repo in _holding(state, dead_filter)])}
