"""Job endpoints: read, list, cancel, retry, live progress (SSE), queue stats, workers, DLQ."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from docworkers.api.errors import ApiError, status_for
from docworkers.api.security import require_token
from docworkers.api.state import ApiState, api_state
from docworkers.errors import DocworkersError
from docworkers.queue import Job, JobFilter, JobStatus, RedisJobRepository

log = logging.getLogger("docworkers.api")

POLL_INTERVAL = 0.2  # seconds between two reads of a job streamed by /events
KEEPALIVE = 10.0  # seconds of silence after which /events sends a comment line

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
State = Annotated[ApiState, Depends(api_state)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    return round((end - start).total_seconds() * 1000) if start and end else None


def job_view(job: Job) -> dict[str, Any]:
    """A job as the API shows it: ``Job.to_dict()`` plus retries and timings, minus the
    server-side storage path of an upload."""
    data = job.to_dict()
    payload = dict(data["payload"])
    payload.pop("file_path", None)
    data["payload"] = payload
    data["retries"] = job.retry_count
    stages = job.result.get("timings_ms") if isinstance(job.result, dict) else None
    data["timings"] = {
        "wait_ms": _ms(job.created_at, job.started_at),
        "processing_ms": _ms(job.started_at, job.completed_at),
        "stages_ms": stages or {},
    }
    return data


def _jobs(state: ApiState) -> RedisJobRepository:
    return state.runtime.jobs


# -- queue-wide ---------------------------------------------------------------------------------


def _fresh(state: ApiState, workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Workers as published by their heartbeats (up to a third of the lease old), with this
    process's own workers replaced by their current statistics."""
    local = {name: stats.to_dict() for name, stats in state.pool.get_all_stats().items()}
    return [local.get(str(w.get("worker_name")), w) for w in workers]


@router.get("/jobs/stats", tags=["queue"], summary="Counts by status, totals and live workers")
async def job_stats(state: State) -> dict[str, Any]:
    stats = await _jobs(state).stats()
    data = stats.to_dict()
    data["queue_depth"] = stats.by_status.get("queued", 0) + stats.by_status.get("retrying", 0)
    data["workers"] = _fresh(state, stats.workers)
    return data


@router.get("/workers", tags=["queue"], summary="Workers with a live heartbeat (all processes)")
async def list_workers(state: State) -> dict[str, Any]:
    workers = _fresh(state, await _jobs(state).list_workers())
    return {"workers": workers, "count": len(workers)}


# -- jobs ---------------------------------------------------------------------------------------


@router.get("/jobs", tags=["jobs"], summary="List jobs, newest first")
async def list_jobs(
    state: State,
    type: Annotated[list[str] | None, Query(description="job type; repeat for several")] = None,
    status: Annotated[list[str] | None, Query(description="status; repeat for several")] = None,
    tag: Annotated[list[str] | None, Query(description="jobs must carry every tag")] = None,
    user: Annotated[str | None, Query(max_length=256)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    job_filter = JobFilter.of(types=type or (), statuses=status or (), tags=tag or (),
                              user_id=user, limit=limit, offset=offset)
    jobs = await _jobs(state).list_jobs(job_filter)
    return {"jobs": [job_view(j) for j in jobs], "count": len(jobs), "limit": limit,
            "offset": offset}


@router.get("/jobs/{job_id}", tags=["jobs"], summary="One job: status, progress, result, error")
async def get_job(job_id: str, state: State) -> dict[str, Any]:
    return job_view(await _jobs(state).get_job(job_id))


@router.post("/jobs/{job_id}/cancel", tags=["jobs"],
             summary="Cancel a waiting job, or ask a running one to stop")
async def cancel_job(job_id: str, state: State) -> dict[str, Any]:
    outcome = await _jobs(state).cancel(job_id)
    return {"job_id": job_id, "cancel": outcome,
            "job": job_view(await _jobs(state).get_job(job_id))}


@router.post("/jobs/{job_id}/retry", tags=["jobs"],
             summary="Queue a failed, dead, cancelled or pending job again")
async def retry_job(job_id: str, state: State) -> dict[str, Any]:
    await _jobs(state).requeue(job_id)
    return job_view(await _jobs(state).get_job(job_id))


@router.delete("/jobs/{job_id}", tags=["jobs"], summary="Delete a job that is not running")
async def delete_job(job_id: str, state: State) -> dict[str, Any]:
    if not await _jobs(state).delete_job(job_id):
        raise ApiError(404, "not_found", f"no job {job_id!r}")
    return {"job_id": job_id, "deleted": True}


@router.get("/jobs/{job_id}/events", tags=["jobs"],
            summary="Server-Sent Events: the job whenever its status, progress or message "
                    "changes, until it finishes",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: str, request: Request, state: State) -> StreamingResponse:
    repo = _jobs(state)
    first = await repo.get_job(job_id)  # a 404 now, before the stream starts
    return StreamingResponse(
        stream_job(request, repo, first), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(seq: int, name: str, data: Any) -> str:
    return f"id: {seq}\nevent: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def stream_job(request: Request, repo: RedisJobRepository, first: Job, *,
                     interval: float = POLL_INTERVAL, keepalive: float = KEEPALIVE
                     ) -> AsyncIterator[str]:
    """Poll the job every ``interval`` s; emit ``job`` events on change, stop when terminal.

    A problem ends the stream with an ``error`` event (the status line is already sent).
    """
    yield "retry: 2000\n\n"
    job_id = first.id
    job: Job | None = first
    last: tuple[JobStatus, int, str] | None = None
    seq = 0
    quiet = 0.0
    while True:
        if job is None:
            yield _event(seq + 1, "error", {"code": "not_found",
                                            "message": "the job no longer exists"})
            return
        snapshot = (job.status, job.progress, job.message)
        if snapshot != last:
            seq += 1
            last = snapshot
            quiet = 0.0
            yield _event(seq, "job", job_view(job))
        elif quiet >= keepalive:
            quiet = 0.0
            yield ": keep-alive\n\n"
        if job.is_terminal or await request.is_disconnected():
            return
        await asyncio.sleep(interval)
        quiet += interval
        try:
            job = await repo.find_job(job_id)
        except DocworkersError as exc:
            _, code, message = status_for(exc)
            log.warning("event stream of job %s ended: %s", job_id, exc)
            yield _event(seq + 1, "error", {"code": code, "message": message})
            return


# -- dead-letter queue --------------------------------------------------------------------------


async def _dead_job(state: ApiState, job_id: str) -> Job:
    job = await _jobs(state).get_job(job_id)
    if job.status != JobStatus.DEAD:
        raise ApiError(404, "not_found",
                       f"job {job_id!r} is not in the dead-letter queue (it is {job.status})")
    return job


@router.get("/dlq", tags=["dead letters"], summary="Dead-lettered jobs, most recent first")
async def list_dead_letters(state: State, limit: Limit = 100, offset: Offset = 0
                            ) -> dict[str, Any]:
    jobs = await _jobs(state).dead_letters(limit=limit, offset=offset)
    return {"jobs": [job_view(j) for j in jobs], "count": len(jobs), "limit": limit,
            "offset": offset}


@router.get("/dlq/{job_id}", tags=["dead letters"], summary="One dead-lettered job")
async def get_dead_letter(job_id: str, state: State) -> dict[str, Any]:
    return job_view(await _dead_job(state, job_id))


@router.post("/dlq/{job_id}/requeue", tags=["dead letters"],
             summary="Queue a dead-lettered job again with a fresh retry budget")
async def requeue_dead_letter(job_id: str, state: State) -> dict[str, Any]:
    await _dead_job(state, job_id)
    await _jobs(state).requeue(job_id)
    return job_view(await _jobs(state).get_job(job_id))


@router.delete("/dlq", tags=["dead letters"], summary="Delete every dead-lettered job")
async def purge_dead_letters(state: State) -> dict[str, Any]:
    return {"deleted": await _jobs(state).purge_dead_letters()}
