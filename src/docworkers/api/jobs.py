"""Job endpoints: submit, read, list, cancel, retry, live progress (SSE), stats, workers, DLQ.

Each job type has its own queue derived from the configured one (see
:mod:`docworkers.ingest.jobs.kinds`); these endpoints read all of them, so a job is found by
its id whatever its type, and the statistics and workers cover every type.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from docworkers.api.errors import ApiError, ErrorResponse, describe_fields, status_for
from docworkers.api.limits import MAX_JOB_ID, MAX_TAG, MAX_TAGS, MAX_USER_ID
from docworkers.api.security import check_scope, require_token, submit_scope
from docworkers.api.state import ApiState, api_state
from docworkers.errors import DocworkersError
from docworkers.ingest.jobs.kinds import JOB_KINDS
from docworkers.ingest.payload import UPLOAD_JOB_TYPE
from docworkers.ingest.upload_checks import job_problems
from docworkers.queue import Job, JobFilter, JobStatus, RedisJobRepository
from docworkers.queue.events import EVENT_CAP, attempts, timeline
from docworkers.queue.job import MAX_PRIORITY, MIN_PRIORITY, iso_time
from docworkers.queue.routing import RoutedQueues, combine_stats

log = logging.getLogger("docworkers.api")

POLL_INTERVAL = 0.2  # seconds between two reads of a job streamed by /events
KEEPALIVE = 10.0  # seconds of silence after which /events sends a comment line

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
State = Annotated[ApiState, Depends(api_state)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
# Job ids are at most 128 characters (docworkers.queue.redis.keys); a longer one is refused
# before it is looked up or quoted back in an error.
JobId = Annotated[str, PathParam(min_length=1, max_length=MAX_JOB_ID)]
Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG)]
MAX_TEXT = 255  # characters of a text or collection filter (a filename's length)


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


def _queues(state: ApiState) -> RoutedQueues:
    return state.runtime.queues


async def _owner(state: ApiState, job_id: str) -> RedisJobRepository:
    return await _queues(state).owner(job_id)


# -- queue-wide ---------------------------------------------------------------------------------


def _fresh(state: ApiState, workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Workers as published with their heartbeats (about a second old), with this
    process's own workers replaced by their current statistics."""
    local = {name: stats.to_dict() for name, stats in state.pool.get_all_stats().items()}
    return [local.get(str(w.get("worker_name")), w) for w in workers]


@router.get("/jobs/stats", tags=["queue"], summary="Counts by status, totals and live workers")
async def job_stats(state: State) -> dict[str, Any]:
    by_queue = await _queues(state).stats_by_queue()
    stats = combine_stats(state.settings.queue, list(by_queue.values()))
    data = stats.to_dict()
    data["queue_depth"] = stats.by_status.get("queued", 0) + stats.by_status.get("retrying", 0)
    data["workers"] = _fresh(state, stats.workers)
    data["queues"] = {queue: part.by_status for queue, part in by_queue.items()}
    return data


@router.get("/workers", tags=["queue"], summary="Workers with a live heartbeat (all processes)")
async def list_workers(state: State) -> dict[str, Any]:
    workers = _fresh(state, await _queues(state).list_workers())
    return {"workers": workers, "count": len(workers)}


# -- jobs ---------------------------------------------------------------------------------------


class SubmitRequest(BaseModel):
    """A document job to queue; ``payload`` is checked with the type's payload class."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=64, description=", ".join(
        t for t, kind in JOB_KINDS.items() if not kind.names_server_paths))
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=MIN_PRIORITY, le=MAX_PRIORITY,
                          description="higher runs first")
    user_id: str | None = Field(default=None, max_length=MAX_USER_ID)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


def _refusal(job_type: str) -> str | None:
    """Why the API does not take ``job_type`` (None: it does)."""
    kind = JOB_KINDS.get(job_type)
    if kind is None:
        return (f"unknown job type {job_type!r}; use one of "
                f"{', '.join(t for t, k in JOB_KINDS.items() if not k.names_server_paths)}")
    if job_type == UPLOAD_JOB_TYPE:
        return "upload documents with POST /api/documents/upload"
    if kind.names_server_paths:
        return (f"{job_type} names files on the server's disks, which API clients may not "
                "do; run `docworkers jobs submit` on a machine that has the files")
    return None


@router.post(
    "/jobs", status_code=202, tags=["jobs"], summary="Queue a document job",
    description="Queues a `document_delete`, `collection_delete`, `metadata_extract` or "
                "`vector_reindex` job on its type's queue and answers at once with the job "
                "id. The payload is validated first: a wrong field is a 422 naming it "
                "(`payload.<field>`). Uploads go through `POST /api/documents/upload`.",
    responses={422: {"model": ErrorResponse}},
)
async def submit_job(request: SubmitRequest, http: Request, state: State) -> JSONResponse:
    refusal = _refusal(request.type)
    if refusal is not None:
        raise ApiError(422, "invalid_payload", f"invalid job: type: {refusal}",
                       fields={"type": refusal})
    check_scope(http, submit_scope(request.type), f"a {request.type} job")
    found = job_problems(request.type, request.payload, window=state.runtime.embedder_window,
                         embedder=state.settings.embedder)  # the CLI's checks, too
    problems = {name if name == "payload" else f"payload.{name}": problem
                for name, problem in found.items()}
    if problems:
        raise ApiError(422, "invalid_payload", f"invalid job: {describe_fields(problems)}",
                       fields=problems)
    job_id = await state.runtime.submit(request.type, request.payload,
                                        priority=request.priority, user_id=request.user_id,
                                        tags=request.tags)
    repo = _queues(state).for_type(request.type)
    job = await repo.find_job(job_id)
    created = job.created_at if job and job.created_at else datetime.now(UTC)
    return JSONResponse({"job_id": job_id, "type": request.type, "queue": repo.queue,
                         "status": "queued", "created_at": iso_time(created)},
                        status_code=202, headers={"Location": f"/api/jobs/{job_id}"})


def _payload_pairs(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ApiError(422, "invalid_request", f"payload filter {pair[:80]!r}: use field=value",
                           fields={"payload": "use field=value"})
        found[name] = value
    return found


@router.get(
    "/jobs", tags=["jobs"], summary="List jobs, newest first, filtered and paged",
    description="Every retained job of every queue, newest first. Filters combine (AND); "
                "a repeated `type`, `status` or `queue` matches any of its values. `total` is "
                "the number of matches in all, or null when counting them would mean reading "
                "more than a few thousand jobs past the page (then page on while `jobs` is "
                "full). `types` and `queues` list what the filters accept.",
)
async def list_jobs(
    state: State,
    type: Annotated[list[str] | None, Query(description="job type; repeat for several")] = None,
    status: Annotated[list[str] | None, Query(description="status; repeat for several")] = None,
    queue: Annotated[list[str] | None, Query(description="queue; repeat for several")] = None,
    tag: Annotated[list[str] | None, Query(description="jobs must carry every tag")] = None,
    user: Annotated[str | None, Query(max_length=MAX_USER_ID)] = None,
    collection: Annotated[str | None, Query(max_length=MAX_TEXT,
                                            description="the payload's collection")] = None,
    payload: Annotated[list[str] | None, Query(
        max_length=MAX_TAGS, description="`field=value`: a top-level payload field equals the "
                                         "value; repeat for several")] = None,
    text: Annotated[str | None, Query(
        max_length=MAX_TEXT, description="case-insensitive text in the job id or any "
                                         "payload text (e.g. the filename)")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    pairs = _payload_pairs(payload or [])
    if collection:
        pairs["collection"] = collection
    queues = _queues(state)
    job_filter = JobFilter.of(types=type or (), statuses=status or (), tags=tag or (),
                              queues=queue or (), payload=pairs, text=text, user_id=user,
                              limit=limit, offset=offset)
    page = await queues.page_jobs(job_filter)
    return {"jobs": [job_view(j) for j in page.jobs], "count": len(page.jobs),
            "total": page.total, "limit": limit, "offset": offset,
            "types": list(JOB_KINDS), "queues": list(queues.queues)}


def _actions(job: Job) -> list[str]:
    """What may be done to the job now (the dashboard shows only these buttons)."""
    actions = []
    if job.status in (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RETRYING) or (
            job.status == JobStatus.PROCESSING and not job.cancel_requested):
        actions.append("cancel")
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.PENDING):
        actions.append("retry")
    if job.status == JobStatus.DEAD:
        actions.append("requeue")
    if job.status != JobStatus.PROCESSING:
        actions.append("delete")
    return actions


@router.get(
    "/jobs/{job_id}", tags=["jobs"],
    summary="One job: payload, result, error with traceback, attempts and timeline",
    description="The job as listed, plus `error.traceback`, `timeline` (enqueued, then each "
                "recorded event oldest first: `reserved` with worker, fencing token and lease, "
                "`progress` messages, `retry`/`deferred` with `delay_ms` and `run_at`, "
                "`lease_expired`, `released`, `requeued`, `cancel_requested`, and the end: "
                "`completed`, `failed`, `dead` or `cancelled`, with the error's code and "
                f"message), `attempts` (one per reservation) and `actions` (cancel, retry, "
                f"requeue, delete: those that apply now). The queue keeps the last "
                f"{EVENT_CAP} events of a job.",
)
async def get_job(job_id: JobId, state: State) -> dict[str, Any]:
    repo = await _owner(state, job_id)
    job = await repo.get_job(job_id)
    events = await repo.job_events(job_id)
    data = job_view(job)
    if job.error is not None and isinstance(data["error"], dict):
        data["error"]["traceback"] = job.error.traceback
    data["timeline"] = [event.to_dict() for event in timeline(job, events)]
    data["attempts"] = attempts(events)
    data["events_cap"] = EVENT_CAP
    data["cancel_requested"] = job.cancel_requested
    data["actions"] = _actions(job)
    return data


@router.post("/jobs/{job_id}/cancel", tags=["jobs"],
             summary="Cancel a waiting job, or ask a running one to stop")
async def cancel_job(job_id: JobId, state: State) -> dict[str, Any]:
    repo = await _owner(state, job_id)
    outcome = await repo.cancel(job_id)
    return {"job_id": job_id, "cancel": outcome, "job": job_view(await repo.get_job(job_id))}


@router.post("/jobs/{job_id}/retry", tags=["jobs"],
             summary="Queue a failed, dead, cancelled or pending job again")
async def retry_job(job_id: JobId, state: State) -> dict[str, Any]:
    repo = await _owner(state, job_id)
    await repo.requeue(job_id)
    return job_view(await repo.get_job(job_id))


@router.delete("/jobs/{job_id}", tags=["jobs"], summary="Delete a job that is not running")
async def delete_job(job_id: JobId, state: State) -> dict[str, Any]:
    if not await (await _owner(state, job_id)).delete_job(job_id):
        raise ApiError(404, "not_found", f"no job {job_id!r}")
    return {"job_id": job_id, "deleted": True}


@router.get("/jobs/{job_id}/events", tags=["jobs"],
            summary="Server-Sent Events: the job whenever its status, progress or message "
                    "changes, until it finishes",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: JobId, request: Request, state: State) -> StreamingResponse:
    repo = await _owner(state, job_id)  # a 404 now, before the stream starts
    first = await repo.get_job(job_id)
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
    job = await _queues(state).get_job(job_id)
    if job.status != JobStatus.DEAD:
        raise ApiError(404, "not_found",
                       f"job {job_id!r} is not in the dead-letter queue (it is {job.status})")
    return job


@router.get("/dlq", tags=["dead letters"], summary="Dead-lettered jobs, most recent first")
async def list_dead_letters(state: State, limit: Limit = 100, offset: Offset = 0
                            ) -> dict[str, Any]:
    jobs = await _queues(state).dead_letters(limit=limit, offset=offset)
    return {"jobs": [job_view(j) for j in jobs], "count": len(jobs), "limit": limit,
            "offset": offset}


@router.get("/dlq/{job_id}", tags=["dead letters"], summary="One dead-lettered job")
async def get_dead_letter(job_id: JobId, state: State) -> dict[str, Any]:
    return job_view(await _dead_job(state, job_id))


@router.post("/dlq/{job_id}/requeue", tags=["dead letters"],
             summary="Queue a dead-lettered job again with a fresh retry budget")
async def requeue_dead_letter(job_id: JobId, state: State) -> dict[str, Any]:
    await _dead_job(state, job_id)
    repo = await _owner(state, job_id)
    await repo.requeue(job_id)
    return job_view(await repo.get_job(job_id))


@router.delete("/dlq", tags=["dead letters"], summary="Delete every dead-lettered job")
async def purge_dead_letters(state: State) -> dict[str, Any]:
    return {"deleted": await _queues(state).purge_dead_letters()}
